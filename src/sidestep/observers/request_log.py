"""The request log (`server.request_log`): one JSON record per proxied LLM request, once it is over.

Where the access log sees HTTP (every path, at the response head), this sees the gateway's work: the
model asked for and the target that served it, every attempt, token usage, cost, the virtual key, team
and customer, how long the whole request took (to a stream's last byte) and why it failed. Prompts and
answers are never logged. Records are written in batches off the request path (`sidestep.batch`).

A record is a msgspec struct of plain values built when the request ends, kept out of the garbage
collector's sight (`gc=False`) while it waits for the flush: holding on to the request itself would keep
its headers and body alive, and the collector would walk them over and over (measured: several µs per
request at saturation).

It observes the outcome record (`sidestep.outcome`), so it sees what every plugin decided, refusals
included; of the records it is handed it keeps the proxied ones (`Exchange.proxied`).
"""

from __future__ import annotations

from typing import IO

from sidestep.batch import BatchWriter, thousandths
from sidestep.config.model import VirtualKey
from sidestep.outcome import Exchange, units_of
from sidestep.pricing import Pricing
from sidestep.records import AttemptRecord, RequestRecord, UsageRecord

__all__ = ["RequestLog"]


class RequestLog:
    """An observer of every finished exchange that writes the proxied ones. `close()` writes what is left."""

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
        self._writer = BatchWriter[RequestRecord](
            sink, name="request_log", interval=interval, max_lines=max_lines, owns_sink=owns_sink
        )

    def observe(self, exchange: Exchange) -> None:
        if not exchange.proxied:
            return
        if self._writer.full:
            self._writer.drop()
            return
        self._writer.add(self._record(exchange))

    def flush(self) -> None:
        self._writer.flush()

    def start(self) -> None:
        """Nothing to start: the writer schedules its flush when a record arrives."""

    def close(self) -> None:
        self._writer.close()

    def _record(self, ex: Exchange) -> RequestRecord:
        """The record, built in one call (each field set after construction costs a round of bytecodes,
        and every proxied request pays for this)."""
        models = ex.models
        key = ex.principal if isinstance(ex.principal, VirtualKey) else None
        usage = ex.usage
        cost = None
        if usage is not None:
            cost = ex.cost_usd
            if cost is None and self._pricing and ex.provider:
                cost = self._pricing.cost(ex.provider, ex.model, usage)
        return RequestRecord(
            ex.started,
            ex.request_id,
            ex.operation,
            models[0] if models else None,
            ex.stream,
            ex.status,
            thousandths((ex.ended - ex.started) * 1000),
            ex.provider or None,
            ex.model or None,
            tuple(models[1:]) if len(models) > 1 else None,
            key.name if key is not None else None,
            key.team if key is not None else None,
            key.customer if key is not None else None,
            _end_user(ex),
            [
                AttemptRecord(a.provider + "/" + a.model, a.status, a.reason, thousandths(a.duration_ms))
                for a in ex.attempts
            ]
            if ex.attempts
            else None,
            UsageRecord(usage.input, usage.output, ex.estimated, units_of(usage)) if usage is not None else None,
            int(cost * 100_000_000.0 + 0.5) / 100_000_000.0 if cost is not None else None,  # USD to 8 decimals
            ex.error,
            ex.cache,
            ex.arguments,
        )


def _end_user(ex: Exchange) -> str | None:
    if "user" not in ex.body and "metadata" not in ex.body:  # the usual request names none
        return None
    user = ex.format.end_user(ex.body)
    return user[:256] if user is not None else None
