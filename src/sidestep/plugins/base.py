"""The plugin contract: symmetric hooks around every proxied request.

`pre` hooks run in configured order once the request is parsed; one may answer in the gateway's place
(return a `Response`: a cache hit) or refuse (raise a `SidestepError`: a denied key, a spent budget).
`post` hooks run in reverse order when the request is over — for a stream, when its last byte has gone
or the client has left — and only for plugins whose `pre` ran, the refusing one included. Both are
synchronous: they touch in-memory state only and hand any I/O to a background flush, so a plugin never
adds an await to the request's path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sidestep.errors import Attempt, SidestepError
from sidestep.formats.base import ClientFormat
from sidestep.server.types import Request, Response

__all__ = ["Exchange", "Pipeline", "Plugin", "TokenUsage"]

log = logging.getLogger("sidestep.plugins")


class TokenUsage(Protocol):
    """Token counts as every provider adapter reports them (canonical `Usage` and the wire structs)."""

    @property
    def input(self) -> int: ...

    @property
    def output(self) -> int: ...


@dataclass(slots=True, eq=False)
class Exchange:
    """One proxied request as plugins see it: filled in by the gateway as the request goes."""

    request: Request
    request_id: str
    operation: str  # "chat", "messages", "embeddings", "count_tokens"
    format: ClientFormat  # what the client speaks (`sidestep.formats`)
    models: Sequence[str]  # every model name the request may be served under (route, fallbacks)
    stream: bool
    started: float  # wall clock (seconds since the epoch) when the request was parsed
    body: dict[str, Any]  # the request's top-level fields (nested ones stay raw JSON: `formats.body.field`)
    status: int = 0  # the response's status (a stream that failed after its head still says 200)
    provider: str = ""  # who served it
    model: str = ""
    attempts: Sequence[Attempt] = ()
    usage: TokenUsage | None = None
    error: str | None = None  # why it failed, also for a stream that broke after its head
    ended: float = 0.0
    principal: Any = None  # who is calling, once a plugin has established it (governance: a VirtualKey)
    headers: list[tuple[str, str]] | None = None  # response headers plugins add (rate-limit state …)
    cost_usd: float | None = None  # priced from `usage` by the plugin that knows the prices (governance)
    reserved_usd: float = 0.0  # held against budgets while in flight (governance), released in its `post`
    estimated: bool = False  # `usage` is an estimate: the stream ended without the provider's count


class Plugin(Protocol):
    name: str
    wants_usage: bool  # post needs token usage: OpenAI streams ask their upstream to report it

    def pre(self, exchange: Exchange) -> Response | None: ...

    def post(self, exchange: Exchange) -> None: ...


class Pipeline:
    """Plugins in order; `pre` and `post` as the module docstring says."""

    __slots__ = ("_clock", "plugins", "wants_usage")

    def __init__(self, plugins: Sequence[Plugin], clock: Callable[[], float] = time.time) -> None:
        self.plugins = tuple(plugins)
        self._clock = clock  # the wall clock that stamps `Exchange.ended`
        self.wants_usage = any(plugin.wants_usage for plugin in self.plugins)

    def __bool__(self) -> bool:
        return bool(self.plugins)

    def pre(self, exchange: Exchange) -> Response | None:
        for ran, plugin in enumerate(self.plugins, 1):
            try:
                answer = plugin.pre(exchange)
            except SidestepError as refusal:
                exchange.status, exchange.error = refusal.status, refusal.message
                self._post(exchange, ran)
                raise
            except Exception as exc:  # a plugin's bug: the request fails (closed), and is still accounted for
                exchange.status, exchange.error = 500, f"plugin {plugin.name} failed: {exc!r}"
                self._post(exchange, ran)
                raise
            if answer is not None:
                exchange.status = answer.status
                self._post(exchange, ran)
                return answer
        return None

    def post(self, exchange: Exchange) -> None:
        self._post(exchange, len(self.plugins))

    def _post(self, exchange: Exchange, ran: int) -> None:
        exchange.ended = self._clock()
        for plugin in reversed(self.plugins[:ran]):
            try:
                plugin.post(exchange)
            except Exception:  # one plugin's bug must not cost the others their bookkeeping
                log.exception("plugin %s failed in post for %s", plugin.name, exchange.request_id)
