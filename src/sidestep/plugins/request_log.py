"""The request log (`server.request_log`): one JSON record per proxied LLM request, once it is over.

Where the access log sees HTTP (every path, at the response head), this sees the gateway's work: the
model asked for and the target that served it, every attempt, token usage, cost, the virtual key, team
and customer, how long the whole request took (to a stream's last byte) and why it failed. Prompts and
answers are never logged. Records are written in batches off the request path (`sidestep.batch`).

It is the outermost plugin, so its `post` runs last and sees what every other plugin decided,
refusals included.
"""

from __future__ import annotations

import time
from typing import IO, Any

from sidestep.batch import BatchWriter
from sidestep.config.model import VirtualKey
from sidestep.plugins.base import Exchange
from sidestep.plugins.pricing import Pricing
from sidestep.server.types import Response

__all__ = ["RequestLog"]


class RequestLog:
    name = "request_log"
    wants_usage = True

    def __init__(
        self,
        sink: IO[bytes],
        pricing: Pricing,
        *,
        interval: float = 0.1,
        max_lines: int = 10_000,
        owns_sink: bool = False,
    ) -> None:
        self._pricing = pricing
        self._writer = BatchWriter[Exchange](
            sink, self._record, name="request_log", interval=interval, max_lines=max_lines, owns_sink=owns_sink
        )

    def pre(self, exchange: Exchange) -> Response | None:
        return None

    def post(self, exchange: Exchange) -> None:
        if self._writer.full:
            self._writer.drop()
            return
        exchange.ended = time.time()
        self._writer.add(exchange)  # the record is built at flush time, off the request path

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def _record(self, ex: Exchange) -> dict[str, Any]:
        record: dict[str, Any] = {
            "ts": round(ex.started, 3),
            "id": ex.request_id,
            "operation": ex.operation,
            "requested": ex.models[0] if ex.models else None,
            "stream": ex.stream,
            "status": ex.status,
            "ms": round((ex.ended - ex.started) * 1000, 3),
        }
        if ex.provider:
            record["provider"], record["model"] = ex.provider, ex.model
        if len(ex.models) > 1:
            record["fallbacks"] = list(ex.models[1:])
        key = ex.principal
        if isinstance(key, VirtualKey):
            record["key"] = key.name
            if key.team is not None:
                record["team"] = key.team
            if key.customer is not None:
                record["customer"] = key.customer
        if ex.attempts:
            record["attempts"] = [
                {
                    "target": f"{a.provider}/{a.model}",
                    "status": a.status,
                    "reason": a.reason,
                    "ms": round(a.duration_ms, 3),
                }
                for a in ex.attempts
            ]
        usage = ex.usage
        if usage is not None:
            record["usage"] = {"input": usage.input, "output": usage.output}
            cost = ex.notes.get("cost_usd")
            if cost is None and self._pricing and ex.provider:
                cost = self._pricing.cost(ex.provider, ex.model, usage)
            if cost is not None:
                record["cost_usd"] = round(cost, 8)
        if ex.error is not None:
            record["error"] = ex.error
        return record
