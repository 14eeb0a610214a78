"""The MCP gateway as an ordinary plugin: upstream MCP servers behind one governed MCP server at `/mcp`.

Capabilities (`sidestep.plugins.capabilities`), nothing else: it serves endpoints — `/mcp` (the SDK's Streamable
HTTP transport, stateful sessions with JSON answers; POST, GET and DELETE), `POST /v1/mcp/tools/call` (one call
as plain JSON: `{"name": "server__tool", "arguments": {…}}`) and `GET /sidestep/mcp` (each server's health and
tools, for `sidestep mcp list`) — all guarded: the gateway authenticates the caller as for proxied requests (a
virtual key, when governance is on) and hands it over. It starts its upstreams and the SDK's session manager
with the server and stops them with it (`HasLifecycle`; `AwaitsClose`: says when the stdio servers have exited),
takes over the connections of a reload's unchanged servers and the session manager, so clients keep their
sessions (`SurvivesReload`), and exports each server's health (`ExportsMetrics`). Its `pre` hook adds the MCP
tools a chat request asks for (`x-sidestep-mcp`, or `mcp.chat` per route or key) to the request, in the client's
format (`sidestep.plugins.mcp.chat`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError

from sidestep.config.model import BreakerPolicy, McpConfig
from sidestep.errors import BadRequest, Forbidden, LimitExceeded, NotFound
from sidestep.observers.metrics import labels
from sidestep.outcome import Exchange
from sidestep.plugins.capabilities import SideRequest, SideStream
from sidestep.plugins.mcp.agent import run_agent
from sidestep.plugins.mcp.agent_stream import stream_agent
from sidestep.plugins.mcp.asgi import ASGIApp, serve_asgi
from sidestep.plugins.mcp.chat import CHAT_OPERATIONS, add_tools, chat_tools, wanted_servers
from sidestep.plugins.mcp.front import CALLER, RECORD, Front, RateLimited, build_server
from sidestep.plugins.mcp.upstream import Upstream
from sidestep.server.types import Endpoint, Request, Response, StreamingResponse

__all__ = ["McpAgent", "McpPlugin"]

_JSON = ("content-type", "application/json")
_UP = {"starting": 0, "down": 0, "up": 1}


class _Sessions:
    """The SDK's session manager, running for as long as the plugin (and its successors after reloads) serve."""

    def __init__(self, front: Callable[[], Front]) -> None:
        self.manager = StreamableHTTPSessionManager(build_server(front), json_response=True)
        self._task: asyncio.Task[None] | None = None
        self._running = asyncio.Event()
        self.front = front

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="mcp:sessions")

    async def _run(self) -> None:
        async with self.manager.run():
            self._running.set()
            await asyncio.Event().wait()  # until cancelled

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def stopped(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def app(self) -> ASGIApp:
        await self._running.wait()
        return self.manager.handle_request


class McpPlugin:
    name = "mcp"
    wants_usage = False

    def __init__(self, config: McpConfig, breaker: BreakerPolicy, wall: Callable[[], float] = time.time) -> None:
        self.config = config
        upstreams = {n: self._upstream(s) for n, s in config.servers.items()}
        self.front = Front(config, upstreams, breaker, wall=wall)
        self._holder = [self.front]  # what the running SDK server asks: the current plugin's front
        self.sessions = _Sessions(lambda: self._holder[0])

    def _upstream(self, server: Any) -> Upstream:
        return Upstream(server, self.config)

    # -- hooks --------------------------------------------------------------------------------------------------

    def pre(self, exchange: Exchange) -> Response | None:
        """Tools in chat (`sidestep.plugins.mcp.chat`): the MCP tools a chat request asks for join its own."""
        client = exchange.converses
        if client is not None and exchange.operation in CHAT_OPERATIONS:
            servers = wanted_servers(exchange, self.config)
            if servers:
                add_tools(exchange, client, chat_tools(self.front, exchange.principal, servers))
        return None

    def post(self, exchange: Exchange) -> None:
        return None

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        for upstream in self.front.upstreams.values():
            upstream.start()
        self.sessions.start()

    def close(self) -> None:
        for upstream in self.front.upstreams.values():
            upstream.stop()
        self.sessions.close()

    async def closed(self) -> None:
        """Wait until what `close` stopped has ended (`AwaitsClose`: stdio servers' processes reaped, the clients'
        sessions ended)."""
        await asyncio.gather(*(upstream.stopped() for upstream in self.front.upstreams.values()))
        await self.sessions.stopped()

    def adopt(self, previous: Any) -> None:
        """Keep the connections of servers configured exactly as before, and the clients' sessions."""
        if not isinstance(previous, McpPlugin):
            return
        old = previous.front.upstreams
        for name, upstream in list(self.front.upstreams.items()):
            kept = old.get(name)
            if kept is not None and kept.config == upstream.config:
                self.front.upstreams[name] = old.pop(name)
                self.front.breakers[name] = previous.front.breakers[name]
        self.sessions, previous.sessions = previous.sessions, _Sessions(previous.sessions.front)
        self._holder = previous._holder
        self._holder[0] = self.front

    # -- endpoints ------------------------------------------------------------------------------------

    def endpoints(self) -> dict[str, Endpoint]:
        return {
            "/mcp": Endpoint("mcp", self._mcp, "POST", methods=("GET", "DELETE"), guarded=True),
            "/v1/mcp/tools/call": Endpoint("mcp_tool_call", self._tool_call, "POST", guarded=True),
            "/sidestep/mcp": Endpoint("mcp_servers", self._servers, guarded=True),
        }

    async def _mcp(self, request: Request, caller: Any, exchange: Exchange | None) -> Response | StreamingResponse:
        app = await self.sessions.app()
        return await serve_asgi(app, request, {CALLER: caller, RECORD: exchange})

    async def _tool_call(self, request: Request, caller: Any, exchange: Exchange | None) -> Response:
        try:
            body = msgspec.json.decode(request.body, type=_ToolCall)
        except msgspec.DecodeError as exc:
            shape = f'{{"name": "server{self.config.separator}tool", "arguments": {{…}}}}'
            raise BadRequest(f"expected {shape}: {exc}") from None
        try:
            result = await self.front.call_tool(caller, body.name, body.arguments, exchange)
        except RateLimited as exc:
            limited = LimitExceeded(
                exc.message, code="rate_limit_exceeded", type_="requests", retry_after=exc.retry_after
            )
            raise limited from None
        except MCPError as exc:
            refused = Forbidden if "may not use" in exc.message else NotFound
            raise refused(exc.message, code="tool_refused") from None
        return Response(200, result.model_dump_json(by_alias=True, exclude_none=True).encode(), [_JSON])

    async def _servers(self, request: Request, caller: Any, exchange: Exchange | None) -> Response:
        servers = []
        for name, upstream in self.front.upstreams.items():
            entry = upstream.health()
            entry["breaker"] = self.front.breakers[name].state
            entry["tools"] = [t.name for t in upstream.catalogue.tools if self.front.allows(caller, name, t.name)]
            servers.append(entry)
        return Response(200, msgspec.json.encode({"separator": self.config.separator, "servers": servers}), [_JSON])

    # -- metrics --------------------------------------------------------------------------------------

    def exposition(self) -> list[str]:
        lines = [
            "# HELP sidestep_mcp_server_up Whether an upstream MCP server's session is up (1) or not (0).",
            "# TYPE sidestep_mcp_server_up gauge",
        ]
        restarts = ["# TYPE sidestep_mcp_server_restarts_total counter"]
        for name, upstream in sorted(self.front.upstreams.items()):
            pairs = labels(server=name)
            lines.append(f"sidestep_mcp_server_up{{{pairs}}} {_UP.get(upstream.state, 0)}")
            restarts.append(f"sidestep_mcp_server_restarts_total{{{pairs}}} {max(upstream.connects - 1, 0)}")
        return lines + restarts


class McpAgent(McpPlugin):
    """The MCP plugin with agent mode on (`mcp.agent`; `sidestep.plugins.mcp.agent`, and `agent_stream` for
    stream requests): a separate class so that without agent mode no request awaits a `pre_async`
    (`Pipeline.awaits`). `keepalive`: seconds between `: keep-alive` comments while an agent stream is quiet."""

    def __init__(
        self,
        config: McpConfig,
        breaker: BreakerPolicy,
        wall: Callable[[], float] = time.time,
        keepalive: float = 15.0,
    ) -> None:
        super().__init__(config, breaker, wall)
        self._send: SideRequest | None = None
        self._stream: SideStream | None = None
        self._keepalive = keepalive

    def bind(self, send: SideRequest) -> None:
        self._send = send

    def bind_stream(self, stream: SideStream) -> None:
        self._stream = stream

    async def pre_async(self, exchange: Exchange) -> Response | StreamingResponse | None:
        client = exchange.converses
        if self._send is None or client is None or exchange.operation not in CHAT_OPERATIONS:
            return None
        config = self.config
        route = exchange.models[0] if exchange.models else ""
        if route not in config.agent_routes and getattr(exchange.principal, "name", None) not in config.agent_keys:
            return None
        steps, timeout = config.agent_max_steps, config.agent_timeout
        if exchange.stream and self._stream is not None:
            return await stream_agent(exchange, client, self.front, self._stream, steps, timeout, self._keepalive)
        return await run_agent(exchange, client, self.front, self._send, steps, timeout)


class _ToolCall(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    arguments: dict[str, Any] | None = None
