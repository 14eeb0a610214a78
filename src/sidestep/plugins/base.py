"""The plugin contract: symmetric hooks around every proxied request, and optional capabilities.

`pre` hooks run in configured order once the request is parsed; one may answer in the gateway's place
(return a `Response`: a cache hit; or a `StreamingResponse`, whose post hooks run at its end) or refuse
(raise a `SidestepError`: a denied key, a spent budget). `post` hooks run in reverse order when the request
is over — for a stream, when its last byte has gone or the client has left — and only for plugins whose
`pre` ran, the refusing one included. Both are
synchronous: they touch in-memory state only and hand any I/O to a background flush.

A plugin that must do I/O before the request goes upstream (a cache lookup, a shared counter in Redis, an
embedding call) also has `pre_async` (`AwaitsPre`): it is awaited right after the plugin's own `pre`, in the
same place in the order, and may answer or refuse the same way. The pipeline knows when it is built whether
any plugin has one (`Pipeline.awaits`); when none has, the gateway calls the synchronous `pre` and the
request awaits nothing extra.

Everything else a plugin can do is an optional capability, a small protocol in
`sidestep.plugins.capabilities` (authenticate a caller from the head, filter the models a caller sees,
serve endpoints, start and stop with the server, survive a reload, export metrics), discovered once when
the gateway builds its plugins (at start and on reload), never looked up per request. Plugins come from the
config through `sidestep.plugins.registry` (a config section → a factory): adding one touches neither the
gateway nor the server.

What a request was and how it ended is an `Exchange` (`sidestep.outcome`): plugins fill it in while the
request runs; observers read it once it is over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from sidestep.errors import SidestepError
from sidestep.outcome import Exchange, TokenUsage
from sidestep.server.types import Response, StreamingResponse

__all__ = ["AwaitsPre", "Exchange", "Pipeline", "Plugin", "TokenUsage"]

log = logging.getLogger("sidestep.plugins")


class Plugin(Protocol):
    name: str
    wants_usage: bool  # post needs token usage: OpenAI streams ask their upstream to report it

    def pre(self, exchange: Exchange) -> Response | None: ...

    def post(self, exchange: Exchange) -> None: ...


class AwaitsPre(Plugin, Protocol):
    """A plugin whose decision needs I/O: `pre_async` runs right after its `pre`, awaited."""

    async def pre_async(self, exchange: Exchange) -> Response | StreamingResponse | None: ...


class Pipeline:
    """Plugins in order; `pre` (or `pre_async` when `awaits`) and `post` as the module docstring says."""

    __slots__ = ("_steps", "awaits", "plugins", "wants_usage")

    def __init__(self, plugins: Sequence[Plugin], awaiting: Sequence[AwaitsPre] = ()) -> None:
        """`awaiting`: those of `plugins` that have `pre_async` (found by `capabilities.discover`)."""
        self.plugins = tuple(plugins)
        slow = {id(plugin): plugin for plugin in awaiting}
        # Each plugin with its awaited half, if it has one: what `pre_async` runs, in order.
        self._steps: tuple[tuple[Plugin, AwaitsPre | None], ...] = tuple(
            (plugin, slow.get(id(plugin))) for plugin in self.plugins
        )
        self.awaits = bool(slow)
        self.wants_usage = any(plugin.wants_usage for plugin in self.plugins)

    def __bool__(self) -> bool:
        return bool(self.plugins)

    def pre(self, exchange: Exchange) -> Response | StreamingResponse | None:
        for ran, plugin in enumerate(self.plugins, 1):
            try:
                answer = plugin.pre(exchange)
            except Exception as exc:
                self._refused(exchange, plugin, exc, ran)
                raise
            if answer is not None:
                return self._answered(exchange, answer, ran)
        return None

    async def pre_async(self, exchange: Exchange) -> Response | StreamingResponse | None:
        """`pre`, awaiting the `pre_async` of the plugins that have one (only when `awaits`)."""
        for ran, (plugin, slow) in enumerate(self._steps, 1):
            try:
                answer: Response | StreamingResponse | None = plugin.pre(exchange)
                if answer is None and slow is not None:
                    answer = await slow.pre_async(exchange)
            except BaseException as exc:  # a cancelled lookup too: the plugins that ran still account for it
                self._refused(exchange, plugin, exc, ran)
                raise
            if answer is not None:
                return self._answered(exchange, answer, ran)
        return None

    def post(self, exchange: Exchange) -> None:
        self._post(exchange, len(self.plugins))

    def _answered(
        self, exchange: Exchange, answer: Response | StreamingResponse, ran: int
    ) -> Response | StreamingResponse:
        exchange.status = answer.status
        if isinstance(answer, StreamingResponse):  # a plugin's stream (agent mode): the hooks run at its end
            answer.on_done = _then(answer.on_done, lambda: self._post(exchange, ran))
        else:
            self._post(exchange, ran)
        return answer

    def _refused(self, exchange: Exchange, plugin: Plugin, exc: BaseException, ran: int) -> None:
        if isinstance(exc, SidestepError):
            exchange.status, exchange.error = exc.status, exc.message
        elif isinstance(exc, Exception):  # a plugin's bug: the request fails (closed), and is still accounted for
            exchange.status, exchange.error = 500, f"plugin {plugin.name} failed: {exc!r}"
        else:
            exchange.status, exchange.error = 499, "the client disconnected before the answer"
        self._post(exchange, ran)

    def _post(self, exchange: Exchange, ran: int) -> None:
        for plugin in reversed(self.plugins[:ran]):
            try:
                plugin.post(exchange)
            except Exception:  # one plugin's bug must not cost the others their bookkeeping
                log.exception("plugin %s failed in post for %s", plugin.name, exchange.request_id)


def _then(done: Callable[[bool], None] | None, after: Callable[[], None]) -> Callable[[bool], None]:
    def both(complete: bool) -> None:
        if done is not None:
            done(complete)
        after()

    return both
