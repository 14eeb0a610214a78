"""One upstream MCP server: its supervised session, the catalogue it offers, and its health.

`Upstream.start` runs a supervisor task on the running loop. It connects (spawning a stdio server, or opening a
Streamable HTTP or SSE session, all through the `mcp` SDK), initializes, lists the server's tools, resources and
prompts (at most `max_items` of each; what is beyond is dropped and counted), then waits: a
`notifications/*/list_changed` from the server lists again; a call that failed on the transport, or the periodic
ping, checks that the session still answers. A session that ended, failed or stopped answering is closed — a stdio
server's process with it — and opened again after a backoff that doubles from `restart_backoff` to `restart_max`
and starts over once a connection holds. Calls are made from the request's task on the shared session; each is
bounded by the server's `timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from sidestep.config.model import McpConfig, McpServerConfig

__all__ = ["PING_EVERY", "Catalogue", "ToolError", "Unavailable", "Upstream"]

log = logging.getLogger("sidestep.mcp")

PING_EVERY = 15.0  # seconds between liveness pings of an idle session
# The SDK's own defaults for its HTTP transports: a server may hold a response stream open for long.
_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
_LIST_CHANGED = (
    types.ToolListChangedNotification,
    types.ResourceListChangedNotification,
    types.PromptListChangedNotification,
)


class Unavailable(Exception):
    """The server could not take the call: not connected, its transport failed, or it timed out. Another
    equivalent server may (a fallback), and it counts against the server's breaker."""


class ToolError(Exception):
    """The server answered with a JSON-RPC error (an unknown tool, bad arguments): it is up, and the call is
    refused by it, not failed — no fallback would answer differently."""

    def __init__(self, error: MCPError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class Catalogue:
    tools: tuple[types.Tool, ...] = ()
    resources: tuple[types.Resource, ...] = ()
    prompts: tuple[types.Prompt, ...] = ()


class Upstream:
    def __init__(
        self,
        config: McpServerConfig,
        limits: McpConfig,
        *,
        on_change: Callable[[], None] = lambda: None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`on_change`: told whenever the catalogue changes (the front's aggregated one is rebuilt)."""
        self.config = config
        self.name = config.name
        self._max_items = limits.max_tools
        self._backoff = (limits.restart_backoff, limits.restart_max)
        self._on_change, self._sleep, self._clock = on_change, sleep, clock
        self.catalogue = Catalogue()
        self.state = "starting"  # starting, up, down
        self.connects = 0  # sessions opened (the first included): restarts are connects - 1
        self.dropped = 0  # catalogue entries beyond max_tools, over every listing
        self.last_error: str | None = None
        self.up_since: float | None = None
        self._session: ClientSession | None = None
        self._capabilities = types.ServerCapabilities()
        self._wake = asyncio.Event()  # a list changed or a call failed: the supervisor looks now
        self._relist = False
        self._ready = asyncio.Event()  # set once the first attempt to connect has ended, either way
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name=f"mcp:{self.name}")

    def stop(self) -> None:
        """Cancel the supervisor: its session (a stdio server's process with it) closes as the task ends
        (`stopped` waits for that)."""
        if self._task is not None:
            self._task.cancel()

    async def stopped(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def aclose(self) -> None:
        self.stop()
        await self.stopped()

    async def ready(self, timeout: float) -> bool:
        """Wait (at most `timeout`) until the first connection attempt ended; True when the server is up."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        return self.state == "up"

    def health(self) -> dict[str, Any]:
        return {
            "server": self.name,
            "transport": self.config.transport,
            "state": self.state,
            "restarts": max(self.connects - 1, 0),
            "tools": len(self.catalogue.tools),
            "resources": len(self.catalogue.resources),
            "prompts": len(self.catalogue.prompts),
            "dropped": self.dropped,
            "error": self.last_error,
        }

    # -- calls ----------------------------------------------------------------------------------------

    async def call(self, method: str, *args: Any) -> Any:
        """`ClientSession.<method>(*args)` within the server's timeout; `Unavailable` or `ToolError` if it failed."""
        session = self._session
        if session is None:
            raise Unavailable(f"MCP server '{self.name}' is {self.state}: {self.last_error or 'not connected'}")
        try:
            async with asyncio.timeout(self.config.timeout):
                return await getattr(session, method)(*args)
        except TimeoutError:
            self._wake.set()
            raise Unavailable(f"MCP server '{self.name}' did not answer within {self.config.timeout:g}s") from None
        except MCPError as exc:
            if _is_transport(exc):
                self._wake.set()
                raise Unavailable(f"MCP server '{self.name}' failed: {exc.message}") from exc
            raise ToolError(exc) from exc
        except (OSError, EOFError) as exc:  # anyio's closed streams are OSErrors or EOFs
            self._wake.set()
            raise Unavailable(f"MCP server '{self.name}' failed: {exc!r}") from exc

    # -- supervision ----------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        delay = self._backoff[0]
        while True:
            try:
                async with self._connect() as session:
                    await self._list(session)
                    self._session, self.state, self.up_since = session, "up", self._clock()
                    self.last_error = None
                    self._ready.set()
                    delay = self._backoff[0]
                    await self._watch(session)
            except Exception as exc:  # a failing server must never end its supervisor
                self.last_error = _describe(exc)
                log.warning("mcp server %s: %s", self.name, self.last_error)
            finally:
                self._session, self.up_since = None, None
            self.state = "down"
            self._ready.set()
            await self._sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[ClientSession]:
        self.connects += 1
        async with contextlib.AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(await self._transport(stack))
            session = await stack.enter_async_context(ClientSession(read, write, message_handler=self._on_message))
            self._capabilities = (await session.initialize()).capabilities
            yield session

    async def _transport(self, stack: contextlib.AsyncExitStack) -> contextlib.AbstractAsyncContextManager[Any]:
        config = self.config
        headers = {name: value.reveal() for name, value in config.headers}
        if config.transport == "stdio":
            assert config.command is not None
            env = {name: value.reveal() for name, value in config.env}
            params = StdioServerParameters(command=config.command, args=list(config.args), env=env, cwd=config.cwd)
            return stdio_client(params)
        assert config.url is not None
        if config.transport == "sse":
            return sse_client(config.url, headers=headers, timeout=config.timeout)
        # The SDK leaves a client it is given open: the stack closes it with the session.
        client = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=_HTTP_TIMEOUT))
        return streamable_http_client(config.url, http_client=client)

    async def _watch(self, session: ClientSession) -> None:
        """Until the session fails: list again when told a list changed, ping when idle or after a failed call."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PING_EVERY):
                    await self._wake.wait()
            self._wake.clear()
            if self._relist:
                self._relist = False
                await self._list(session)
            else:
                async with asyncio.timeout(self.config.timeout):
                    await session.send_ping()

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, _LIST_CHANGED):
            self._relist = True
            self._wake.set()

    async def _list(self, session: ClientSession) -> None:
        caps = self._capabilities
        tools = await self._pages(session.list_tools, "tools") if caps.tools else []
        resources = await self._pages(session.list_resources, "resources") if caps.resources else []
        prompts = await self._pages(session.list_prompts, "prompts") if caps.prompts else []
        self.catalogue = Catalogue(tuple(tools), tuple(resources), tuple(prompts))
        self._on_change()

    async def _pages(self, listing: Callable[..., Awaitable[Any]], entries_of: str) -> list[Any]:
        """Every page of a listing, up to `max_items` entries; the rest is counted in `dropped`."""
        items: list[Any] = []
        cursor: str | None = None
        while True:
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            async with asyncio.timeout(self.config.timeout):
                page = await listing(params=params)
            entries = getattr(page, entries_of)
            room = self._max_items - len(items)
            items.extend(entries[:room])
            if len(entries) > room:
                self.dropped += len(entries) - room
                return items  # the rest is never fetched: a hostile server cannot make us page forever
            cursor = page.next_cursor
            if not cursor:
                return items


def _is_transport(exc: MCPError) -> bool:
    """The SDK reports a closed connection and a timed-out request with an MCPError too, with its own codes; a
    server's refusal (an unknown tool, bad params) carries another JSON-RPC code."""
    return exc.code in (types.CONNECTION_CLOSED, types.REQUEST_TIMEOUT)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
