"""The outcome record: one `Exchange` per request, and the observers it is handed to when the request is over.

The gateway builds one `Exchange` as a request arrives — proxied or local (`/health`, `/v1/models`), refused
or answered — and fills it in as the request goes: the endpoint (`operation`) and the client's format, the
models asked for, who served it and every attempt, the status, token usage and cost, the times the request
arrived, its response head was ready and its last byte went, and why it failed. Plugins read and write it
while the request runs (`sidestep.plugins.base`); when it is over — for a stream, when its last byte has
gone or the client has left — the gateway hands the finished record, once, to every `Observer`: the access
log, the metrics, the request log, and whatever comes next (a tracer, a console's live view). No observer
learns the outcome any other way (none parses response headers back).

Observers are synchronous and cheap: they copy the plain values they keep out of the record (which holds
the request, headers and body: it must not outlive the call) and batch any I/O themselves, as the logs do
(`sidestep.batch`). An observer's exception is logged and spares the others. A request the gateway does
not observe (the metrics scrape) builds no record; a gateway with neither plugins nor observers builds none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sidestep.core.model import Usage
from sidestep.errors import Attempt
from sidestep.formats.base import ClientFormat, Converses
from sidestep.server.types import Request, StreamingResponse

__all__ = ["Exchange", "Observer", "TokenUsage", "tell", "tell_at_end", "units_of"]

log = logging.getLogger("sidestep.outcome")


class TokenUsage(Protocol):
    """Token counts as every provider adapter reports them (canonical `Usage` and the wire structs)."""

    @property
    def input(self) -> int: ...

    @property
    def output(self) -> int: ...


def units_of(usage: TokenUsage) -> float:
    """Billed units of a relayed-only API (images, search units, audio seconds): only the canonical `Usage` has
    them. A class check, not `getattr` with a default (compiled, a missing attribute raises and catches)."""
    return usage.units if isinstance(usage, Usage) else 0.0


@dataclass(slots=True, eq=False)
class Exchange:
    """One request as plugins and observers see it: filled in by the gateway as the request goes."""

    request: Request
    request_id: str
    operation: str  # the endpoint: "chat", "messages", "embeddings", "count_tokens", "health" … ("other": no route)
    format: ClientFormat  # the client's format (`sidestep.formats`); for an unknown path, the one its errors take
    models: Sequence[str]  # every model name the request may be served under (route, fallbacks)
    stream: bool  # the client asked for a stream
    started: float  # wall clock (seconds since the epoch) when the request arrived
    body: dict[str, Any]  # the request's top-level fields (nested ones stay raw JSON: `formats.body.field`)
    status: int = 0  # the response's status (a stream that failed after its head still says 200)
    provider: str = ""  # who served it
    model: str = ""
    translated: bool = False  # served in another wire format than the client's (through the canonical model)
    attempts: Sequence[Attempt] = ()  # every try and skip at a target, continuations of a stream included
    usage: TokenUsage | None = None
    error: str | None = None  # why it failed, also for a stream that broke after its head
    ended: float = 0.0  # wall clock when it was over (a stream: its last byte, or the client left)
    principal: Any = None  # who is calling, once a plugin has established it (governance: a VirtualKey)
    headers: list[tuple[str, str]] | None = None  # response headers plugins add (rate-limit state …)
    cost_usd: float | None = None  # priced from `usage` by the plugin that knows the prices (governance)
    reserved_usd: float = 0.0  # held against budgets while in flight (governance), released in its `post`
    estimated: bool = False  # `usage` is an estimate: the stream ended without the provider's count
    head: float = 0.0  # wall clock when the response head was ready (a stream: its first event)
    streamed: bool = False  # the answer went out as a stream (a stream that failed before its head did not)
    proxied: bool = False  # an LLM request the gateway took on: its body was read, or its key refused
    cache: str | None = None  # what the cache did: "hit", "miss" or "bypass" (None: no cache, or not cacheable)
    answer: bytes | None = None  # a non-stream answer's body as the client got it (for a `KeepsAnswers` plugin)
    notes: dict[str, Any] | None = None  # what a plugin keeps from its `pre` for its `post`, under its name
    arguments: str | None = None  # an MCP tool call's arguments as JSON, when `mcp.log_arguments` is on
    # `format` as it converses through the canonical model, for the plugins that read or write the request or the
    # answer (the cache, the MCP agent); set with the route for a proxied request, None for a relayed-only API.
    converses: Converses | None = None


class Observer(Protocol):
    """Told of every finished exchange, once. `wants_usage`: a stream's token usage must be read for it."""

    wants_usage: bool

    def observe(self, exchange: Exchange) -> None: ...


def tell(observers: tuple[Observer, ...], exchange: Exchange) -> None:
    """Hand `exchange` to every observer; one observer's bug costs the others nothing."""
    for observer in observers:
        try:
            observer.observe(exchange)
        except Exception:
            log.exception("observer %s failed for %s", type(observer).__name__, exchange.request_id)


def tell_at_end(
    observers: tuple[Observer, ...], exchange: Exchange, response: StreamingResponse, clock: Callable[[], float]
) -> None:
    """A stream a plugin answered with (agent mode, an MCP SSE stream): its record goes to `observers` once it
    is over (after what the stream's own `on_done` does), not when its head goes out."""
    exchange.streamed = True
    done = response.on_done

    def over(complete: bool) -> None:
        if done is not None:
            done(complete)
        if not complete and exchange.error is None:
            exchange.error = "the client disconnected mid-stream"
        exchange.ended = clock()
        tell(observers, exchange)

    response.on_done = over
