"""The gateway's table of what it answers, by path: each path → a `Route` (the endpoint's name, the client's
format, a handler per method).

Built once per configuration (at start and on reload) from the endpoint table (`sidestep.endpoints`: proxied
POSTs and the gateway's own GETs), the paths plugins serve (`ServesEndpoints`) and the paths of plugins that are
off (a 404 that says how to turn them on). A path that names its model (`endpoints.MODEL_PATHS`) gets its route
when it is asked for (`model_route`); any other path gets a 404 in the format the path looks like it speaks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from sidestep.endpoints import ENDPOINTS, client_format, model_path
from sidestep.errors import NotFound, SidestepError
from sidestep.formats.base import ClientFormat, RefusesPaths
from sidestep.outcome import Exchange
from sidestep.plugins.registry import off_paths
from sidestep.server.types import Endpoint, Request, Response, StreamingResponse

__all__ = ["Handler", "Route", "model_route", "refusal", "route_table"]

# A route's handler: (request, request id, its outcome record when one is kept).
Handler = Callable[[Request, str, Exchange | None], Awaitable[Response | StreamingResponse]]
# `Gateway._proxy`, keywords bound per route: the operation, the client's format and its conversing side (None: a
# relayed-only API, its answers the upstream's bytes), and what a path that names its model says.
Proxy = Callable[..., Awaitable[Response | StreamingResponse]]
Guarded = Callable[..., Awaitable[Response | StreamingResponse]]  # a plugin endpoint behind authentication


@dataclass(frozen=True, slots=True)
class Route:
    name: str  # the endpoint (`Exchange.operation`)
    format: ClientFormat  # the client's format: errors are rendered in it
    methods: Mapping[str, Handler]
    observed: bool = True  # False: no outcome record (the metrics scrape)


def route_table(
    proxy: Proxy,
    local: Mapping[str, Callable[..., Awaitable[Response]]],
    guarded: Guarded,
    plugin_endpoints: Mapping[str, Endpoint] | None,
) -> dict[str, Route]:
    """Every exact path: the endpoint table's (`local` answers its GETs, by operation), then the plugins'."""
    routes = {
        path: Route(
            e.operation,
            e.format,
            {"GET": local[e.operation]}
            if e.method == "GET"
            else {"POST": partial(proxy, operation=e.operation, client=e.format, converses=e.converses)},
        )
        for path, e in ENDPOINTS.items()
    }
    for path, endpoint in (plugin_endpoints or {}).items():
        handler = (
            partial(guarded, endpoint.handler) if endpoint.guarded else partial(_plugin_endpoint, endpoint.handler)
        )
        methods = dict.fromkeys((endpoint.method, *endpoint.methods), handler)
        routes.setdefault(path, Route(endpoint.name, client_format(path), methods, endpoint.observed))
    for path, (name, why) in off_paths().items():
        routes.setdefault(path, Route(name, client_format(path), {"GET": partial(_plugin_off, why)}))
    return routes


def model_route(path: str, proxy: Proxy, local: Mapping[str, Callable[..., Awaitable[Response]]]) -> Route:
    """A path that names its model (`endpoints.MODEL_PATHS`), or one no route serves (a 404 in the format the
    path looks like it speaks)."""
    named = model_path(path)
    if named is None:
        return Route("other", client_format(path), {})
    e, model = named
    if e.method == "GET":
        return Route(e.operation, e.format, {"GET": partial(local[e.operation], model=model)})
    handler = partial(
        proxy, operation=e.operation, client=e.format, converses=e.converses, path_model=model, path_stream=e.stream
    )
    return Route(e.operation, e.format, {"POST": handler})


def refusal(client: ClientFormat, request: Request) -> SidestepError | None:
    """Why a path under a client format's endpoint is not served, when the format can say better than 404."""
    return client.refuse_path(request.path, request.method) if isinstance(client, RefusesPaths) else None


async def _plugin_endpoint(
    handler: Callable[[Request], Awaitable[Response | StreamingResponse]],
    request: Request,
    request_id: str,
    exchange: Exchange | None,
) -> Response | StreamingResponse:
    return await handler(request)


async def _plugin_off(why: str, request: Request, request_id: str, exchange: Exchange | None) -> Any:
    raise NotFound(why, code="not_found")
