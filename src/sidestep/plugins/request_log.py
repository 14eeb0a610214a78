"""The request log (`server.request_log`): one JSON record per proxied LLM request, once it is over.

Where the access log sees HTTP (every path, at the response head), this sees the gateway's work: the
model asked for and the target that served it, every attempt, token usage, cost, the virtual key, team
and customer, how long the whole request took (to a stream's last byte) and why it failed. Prompts and
answers are never logged. Records are written in batches off the request path (`sidestep.batch`).

A record is a msgspec struct of plain values built when the request ends, kept out of the garbage
collector's sight (`gc=False`) while it waits for the flush: holding on to the request itself would keep
its headers and body alive, and the collector would walk them over and over (measured: several µs per
request at saturation).

It is the outermost plugin, so its `post` runs last and sees what every other plugin decided,
refusals included.
"""

from __future__ import annotations

from typing import IO

import msgspec

from sidestep.batch import BatchWriter, thousandths
from sidestep.config.model import VirtualKey
from sidestep.dialects.body import field
from sidestep.plugins.base import Exchange
from sidestep.plugins.pricing import Pricing
from sidestep.server.types import Response

__all__ = ["RequestLog"]


class _Attempt(msgspec.Struct, gc=False):
    target: str
    status: int | None
    reason: str
    ms: float


class _Usage(msgspec.Struct, gc=False):
    input: int
    output: int


class _Record(msgspec.Struct, gc=False, omit_defaults=True):
    ts: float
    id: str
    operation: str
    requested: str | None
    stream: bool
    status: int
    ms: float
    provider: str | None = None
    model: str | None = None
    fallbacks: tuple[str, ...] | None = None
    key: str | None = None
    team: str | None = None
    customer: str | None = None
    user: str | None = None  # the end user the client named (OpenAI `user`, Anthropic `metadata.user_id`)
    attempts: list[_Attempt] | None = None
    usage: _Usage | None = None
    cost_usd: float | None = None
    error: str | None = None


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
        self._writer = BatchWriter[_Record](
            sink, _as_is, name="request_log", interval=interval, max_lines=max_lines, owns_sink=owns_sink
        )

    def pre(self, exchange: Exchange) -> Response | None:
        return None

    def post(self, exchange: Exchange) -> None:
        if self._writer.full:
            self._writer.drop()
            return
        self._writer.add(self._record(exchange))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def _record(self, ex: Exchange) -> _Record:
        models = ex.models
        record = _Record(
            ts=ex.started,
            id=ex.request_id,
            operation=ex.operation,
            requested=models[0] if models else None,
            stream=ex.stream,
            status=ex.status,
            ms=thousandths((ex.ended - ex.started) * 1000),
            error=ex.error,
        )
        if ex.provider:
            record.provider, record.model = ex.provider, ex.model
        if len(models) > 1:
            record.fallbacks = tuple(models[1:])
        key = ex.principal
        if isinstance(key, VirtualKey):
            record.key, record.team, record.customer = key.name, key.team, key.customer
        record.user = _end_user(ex)
        if ex.attempts:
            record.attempts = [
                _Attempt(a.provider + "/" + a.model, a.status, a.reason, thousandths(a.duration_ms))
                for a in ex.attempts
            ]
        usage = ex.usage
        if usage is not None:
            record.usage = _Usage(usage.input, usage.output)
            cost = ex.cost_usd
            if cost is None and self._pricing and ex.provider:
                cost = self._pricing.cost(ex.provider, ex.model, usage)
            if cost is not None:
                record.cost_usd = round(cost, 8)
        return record


def _end_user(ex: Exchange) -> str | None:
    if ex.dialect == "anthropic":
        metadata = field(ex.body, "metadata")
        user = metadata.get("user_id") if isinstance(metadata, dict) else None
    else:
        user = field(ex.body, "user")
    return user[:256] if isinstance(user, str) and user else None


def _as_is(record: _Record) -> _Record:
    return record
