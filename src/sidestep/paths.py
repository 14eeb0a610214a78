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

from sidestep import endpoints
from sidestep.endpoints import ENDPOINTS, client_format, model_path
from sidestep.errors import MethodNotAllowed, NotFound, SidestepError
from sidestep.formats.base import ClientFormat, Converses, RefusesPaths
from sidestep.outcome import Exchange
from sidestep.plugins.registry import off_paths
from sidestep.server.types import Endpoint, Request, Response, StreamingResponse

__all__ = ["Handler", "Proxied", "Route", "model_route", "refusal", "route_table", "unrouted"]

# A route's handler: (request, request id, its outcome record when one is kept).
Handler = Callable[[Request, str, Exchange | None], Awaitable[Response | StreamingResponse]]
Proxy = Callable[..., Awaitable[Response | StreamingResponse]]  # `Gateway._proxy`
Guarded = Callable[..., Awaitable[Response | StreamingResponse]]  # a plugin endpoint behind authentication


@dataclass(frozen=True, slots=True)
class Proxied:
    """What a proxied path asks of routing, decided once per route rather than on every request: the operation,
    the client's format, its conversing side and the shape of its streams (`endpoints.Endpoint` read them off
    the format)."""

    operation: str
    client: ClientFormat
    # `client` as it converses through the canonical model (translated answers and streams, the usage tap, the
    # cache, the MCP agent); None for a relayed-only API, whose answers are the upstream's (`Endpoint.converses`).
    converses: Converses | None
    opaque: bool  # bytes relayed as they come, with the upstream's content type (speech)
    media: str | None  # the stream's media type when it is not SSE (Bedrock's frames)
    needs: Callable[[dict[str, Any], bool], frozenset[str]] | None  # the format's own reading of a request's needs
    model: str | None = None  # the model the path names (Gemini, Bedrock), in place of the body's
    stream: bool | None = None  # whether the path asks for a stream, when it says

    @classmethod
    def of(cls, e: endpoints.Endpoint, model: str | None = None, client: Converses | None = None) -> Proxied:
        """`e`'s, or with `client` in place of its format (the query's pick: `Endpoint.by_query`, a conversing
        format, which is its own conversing side)."""
        if client is not None and client is not e.format:
            e = endpoints.Endpoint(e.operation, client, client, e.method, e.stream)  # the shape read off `client`
        return cls(e.operation, e.format, e.converses, e.opaque, e.media, e.needs, model, e.stream)


@dataclass(frozen=True, slots=True)
class Route:
    name: str  # the endpoint (`Exchange.operation`)
    format: ClientFormat  # the client's format: errors are rendered in it
    methods: Mapping[str, Handler]
    observed: bool = True  # False: no outcome record (the metrics scrape)
    proxied: Proxied | None = None  # a proxied POST: the app calls its proxy with this, no handler in between


def route_table(
    proxy: Proxy,
    local: Mapping[str, Callable[..., Awaitable[Response]]],
    guarded: Guarded,
    plugin_endpoints: Mapping[str, Endpoint] | None,
) -> dict[str, Route]:
    """Every exact path: the endpoint table's (`local` answers its GETs, by operation), then the plugins'."""
    routes = {
        path: Route(e.operation, e.format, {"GET": local[e.operation]})
        if e.method == "GET"
        else _proxied_route(proxy, Proxied.of(e))
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
    if e.by_query is not None:  # the client format is the query's pick (Gemini's `alt`), made once per request
        return Route(e.operation, e.format, {"POST": partial(_by_query, e, model, proxy)})
    return _proxied_route(proxy, Proxied.of(e, model))


def _proxied_route(proxy: Proxy, proxied: Proxied) -> Route:
    handler = partial(proxy, proxied=proxied)  # for callers other than the app's own fast path
    return Route(proxied.operation, proxied.client, {"POST": handler}, proxied=proxied)


def unrouted(route: Route, request: Request) -> SidestepError:
    """Why `request` has no handler: a path nothing serves (404, or the format's own refusal) or a method the path
    does not take (405)."""
    if not route.methods:
        return refusal(route.format, request) or NotFound(f"Unknown path '{request.path}'.", code="not_found")
    allowed = ", ".join(route.methods)
    return MethodNotAllowed(f"Method {request.method} is not allowed on {request.path}; use {allowed}.")


def refusal(client: ClientFormat, request: Request) -> SidestepError | None:
    """Why a path under a client format's endpoint is not served, when the format can say better than 404."""
    return client.refuse_path(request.path, request.method) if isinstance(client, RefusesPaths) else None


async def _by_query(
    e: endpoints.Endpoint, model: str, proxy: Proxy, request: Request, request_id: str, exchange: Exchange | None
) -> Response | StreamingResponse:
    """Proxy with the client format the query string picks; a query it refuses is a 400 in the route's format.
    The outcome record takes the pick too: a plugin answering in the client's place (a cache hit) writes its shape."""
    assert e.by_query is not None
    client = e.by_query(request.query)
    if exchange is not None:
        exchange.format = client
    return await proxy(request, request_id, exchange, Proxied.of(e, model, client))


async def _plugin_endpoint(
    handler: Callable[[Request], Awaitable[Response | StreamingResponse]],
    request: Request,
    request_id: str,
    exchange: Exchange | None,
) -> Response | StreamingResponse:
    return await handler(request)


async def _plugin_off(why: str, request: Request, request_id: str, exchange: Exchange | None) -> Any:
    raise NotFound(why, code="not_found")
