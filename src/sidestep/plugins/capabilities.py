"""What a plugin (or an observer) can do besides its hooks: small optional protocols, found once.

A plugin implements only what it needs; `discover` sorts the configured plugins and observers by
capability when the gateway builds them (at start and on every reload), so the request path never asks an
object what it can do:

- `Authenticates`: tell who calls from the request's head alone, before the body is decoded (a stranger's
  body is never parsed); raises the refusal (`Unauthorized`), returns the caller (`Exchange.principal`).
- `FiltersModels`: narrow what `GET /v1/models` lists for the caller.
- `ServesEndpoints`: answer extra paths (`Endpoint`): governance's `/sidestep/key`, the metrics scrape.
- `HasLifecycle`: start background work on the running loop with the server, stop it when the server
  closes or a reload replaces the plugin. `close` is sync and quick: it stops things and writes what is left.
- `AwaitsClose`: a lifecycle whose stopping takes a while (child processes to reap, sessions to end) says when
  it is over with `async closed()`; the gateway's owner awaits it within the drain timeout (`await_closed`).
- `SurvivesReload`: take over the state of the instance a reload replaces (same name, same type).
- `ExportsMetrics`: add lines to the Prometheus page at scrape time.
- `KeepsAnswers`: read the body of a non-stream answer in `post` (`Exchange.answer`: the cache stores it).
- `SendsRequests`: send requests of its own through the gateway's routing, failover included (`SideRequest`:
  the semantic cache's embeddings), handed the means once when the gateway builds its plugins.
- `StreamsRequests`: the same, streamed (`SideStream`: the MCP agent's model turns), what routing served handed
  over as it is (`Served`: held bytes, the rest, the provider's format) for the plugin to read and close.
- `RescuesFailures`: answer a request in the gateway's place after every target of its route failed, instead
  of the 502 (`rescue`: the cache serves an expired entry); asked in order, the first answer wins.
- `AwaitsPre` (`sidestep.plugins.base`): a `pre` that awaits I/O.

Protocols are checked with `isinstance` here only, at build time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

from sidestep.plugins.base import AwaitsPre, Plugin
from sidestep.routing.served import Served
from sidestep.server.types import Endpoint, Request, Response

__all__ = [
    "Authenticates",
    "AwaitsClose",
    "Capabilities",
    "Endpoint",
    "ExportsMetrics",
    "FiltersModels",
    "HasLifecycle",
    "KeepsAnswers",
    "RescuesFailures",
    "SendsRequests",
    "ServesEndpoints",
    "SideRequest",
    "SideStream",
    "StreamsRequests",
    "SurvivesReload",
    "await_closed",
    "discover",
]


@runtime_checkable
class Authenticates(Protocol):
    def authenticate(self, request: Request) -> Any: ...


@runtime_checkable
class FiltersModels(Protocol):
    def allowed_models(self, request: Request) -> Callable[[str], bool] | None:
        """The test a model name must pass for this caller, or None (every model)."""
        ...


@runtime_checkable
class ServesEndpoints(Protocol):
    def endpoints(self) -> Mapping[str, Endpoint]: ...


@runtime_checkable
class HasLifecycle(Protocol):
    def start(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class AwaitsClose(Protocol):
    async def closed(self) -> None:
        """Wait until what `close` stopped has ended (a stdio child's process reaped)."""
        ...


@runtime_checkable
class SurvivesReload(Protocol):
    def adopt(self, previous: Any) -> None: ...


@runtime_checkable
class ExportsMetrics(Protocol):
    def exposition(self) -> list[str]:
        """Prometheus text lines (HELP, TYPE and samples), read at scrape time."""
        ...


@runtime_checkable
class KeepsAnswers(Protocol):
    """The gateway hands this plugin's `post` the answer's body; for every other pipeline it sets nothing."""

    keeps_answers: bool


# (operation, an OpenAI-format body naming its `model`) → the answer's body in OpenAI's format. Raises the
# gateway's errors (`SidestepError`): an unknown model, every target failed.
SideRequest = Callable[[str, dict[str, Any]], Awaitable[bytes]]


@runtime_checkable
class SendsRequests(Protocol):
    def bind(self, send: SideRequest) -> None: ...


# (operation, an OpenAI-format body with `stream: true`) → the served stream, its first content already in (the
# attempts before it failed over invisibly); the caller reads `held` then `rest` with `format.stream_reader()`,
# and closes it (`aclose`). Raises like `SideRequest`.
SideStream = Callable[[str, dict[str, Any]], Awaitable[Served]]


@runtime_checkable
class StreamsRequests(Protocol):
    def bind_stream(self, stream: SideStream) -> None: ...


@runtime_checkable
class RescuesFailures(Protocol):
    async def rescue(self, exchange: Any) -> Response | None:
        """An answer for a request every target failed (`Exchange.attempts` says how), or None (the 502)."""
        ...


@runtime_checkable
class _AwaitsPre(Protocol):
    async def pre_async(self, exchange: Any) -> Response | None: ...


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The configured plugins and observers, sorted by what they can do."""

    authenticators: tuple[Authenticates, ...] = ()
    model_filters: tuple[FiltersModels, ...] = ()
    endpoints: Mapping[str, Endpoint] | None = None
    lifecycles: tuple[HasLifecycle, ...] = ()
    closers: tuple[AwaitsClose, ...] = ()  # the lifecycles that say when their close is over
    exporters: tuple[ExportsMetrics, ...] = ()
    awaiting: tuple[AwaitsPre, ...] = ()
    keeps_answers: bool = False  # some plugin reads `Exchange.answer`
    senders: tuple[SendsRequests, ...] = ()
    streamers: tuple[StreamsRequests, ...] = ()
    rescuers: tuple[RescuesFailures, ...] = ()


def discover(plugins: Sequence[Plugin], observers: Sequence[object] = ()) -> Capabilities:
    """Sort `plugins` and `observers` by capability (in their order). A path two of them serve goes to the
    first."""
    every: list[object] = [*plugins, *observers]
    endpoints: dict[str, Endpoint] = {}
    for item in every:
        if isinstance(item, ServesEndpoints):
            for path, endpoint in item.endpoints().items():
                endpoints.setdefault(path, endpoint)
    return Capabilities(
        authenticators=tuple(item for item in plugins if isinstance(item, Authenticates)),
        model_filters=tuple(item for item in plugins if isinstance(item, FiltersModels)),
        endpoints=endpoints,
        lifecycles=tuple(item for item in every if isinstance(item, HasLifecycle)),
        closers=tuple(item for item in every if isinstance(item, HasLifecycle) and isinstance(item, AwaitsClose)),
        exporters=tuple(item for item in plugins if isinstance(item, ExportsMetrics)),
        awaiting=tuple(cast(AwaitsPre, item) for item in plugins if isinstance(item, _AwaitsPre)),
        keeps_answers=any(isinstance(item, KeepsAnswers) and item.keeps_answers for item in plugins),
        senders=tuple(item for item in plugins if isinstance(item, SendsRequests)),
        streamers=tuple(item for item in plugins if isinstance(item, StreamsRequests)),
        rescuers=tuple(item for item in plugins if isinstance(item, RescuesFailures)),
    )


async def await_closed(closers: Sequence[AwaitsClose], timeout: float) -> list[str]:
    """Wait at most `timeout` seconds for every closer's `closed()` (after `close`); the names of those that
    had not finished, or failed (`name` attribute, else the type's name)."""
    if not closers:
        return []
    tasks = {asyncio.ensure_future(closer.closed()): closer for closer in closers}
    done, pending = await asyncio.wait(tasks, timeout=max(timeout, 0.0))
    for task in pending:
        task.cancel()
    late = [*pending, *(task for task in done if task.cancelled() or task.exception() is not None)]
    return [str(getattr(tasks[task], "name", type(tasks[task]).__name__)) for task in late]
