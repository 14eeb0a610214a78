"""sidestep as one MCP server: the aggregated catalogue of every upstream, and calls routed to their owners.

Tools and prompts are named `server<separator>name` (`github__create_issue`); resources keep their URIs, each
owned by the first server that lists it. A caller sees and may call only what its virtual key's allow-list
(`mcp.keys`) lets through, when allow-lists are configured. A tool call goes to its server and, when that one
cannot take it (not connected, its transport failed, it timed out, or its circuit breaker is open), on to the
equivalent servers its `fallback` lists, in order; a server's own refusal (an unknown tool, bad arguments) is
the answer. Every call fills in the request's outcome record (`Exchange`): the tool asked for, who served it,
each attempt, and why it failed — the request log and metrics read it from there.

The protocol itself is the `mcp` SDK's low-level `Server` (the handlers here) behind its Streamable HTTP
session manager, which `McpPlugin` serves at `/mcp` through the ASGI adapter.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mcp_types as types
import msgspec
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError

from sidestep.config.model import BreakerPolicy, McpConfig
from sidestep.errors import Attempt
from sidestep.plugins.governance.limits import MinuteWindow
from sidestep.plugins.mcp.upstream import ToolError, Unavailable, Upstream
from sidestep.routing.breaker import Breaker

__all__ = ["CALLER", "RECORD", "Front", "RateLimited", "build_server"]

_MOST_LOGGED = 4096  # characters of a call's arguments the request log keeps
CALLER = "sidestep.caller"  # ASGI scope keys: the authenticated caller and the request's outcome record
RECORD = "sidestep.exchange"


class RateLimited(MCPError):
    """A tool call over its key's or its tool's rate limit (`mcp.limits`)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(types.INVALID_REQUEST, message)
        self.retry_after = retry_after


class Front:
    """The catalogue and the call routing over a set of upstreams (pure but for the calls themselves)."""

    def __init__(
        self,
        config: McpConfig,
        upstreams: Mapping[str, Upstream],
        breaker: BreakerPolicy,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """`clock` times calls and drives the breakers; `wall` drives the rate limits' minutes."""
        self.config = config
        self.sep = config.separator
        self.upstreams = dict(upstreams)
        self._clock = clock
        self._wall = wall
        self.breakers = {name: Breaker(f"mcp:{name}", breaker) for name in upstreams}
        # Bounded by the config: callers are virtual keys (or the one keyless caller), tools the limits' globs.
        self._key_windows: dict[str, MinuteWindow] = {}
        self._tool_windows = {glob: MinuteWindow() for glob, _ in config.tool_calls_per_minute}

    # -- who may use what ----------------------------------------------------------------------------

    def allows(self, caller: Any, server: str, name: str) -> bool:
        keys = self.config.keys
        if not keys:
            return True
        globs = keys.get(getattr(caller, "name", None) or "")
        if globs is None:
            return False
        full = f"{server}{self.sep}{name}"
        return any(fnmatch.fnmatchcase(server, glob) or fnmatch.fnmatchcase(full, glob) for glob in globs)

    def split(self, full: str) -> tuple[str, str]:
        server, sep, name = full.partition(self.sep)
        if not sep or server not in self.upstreams or not name:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool or prompt '{full}' (names are server{self.sep}name)")
        return server, name

    # -- the catalogue -------------------------------------------------------------------------------

    def tools(self, caller: Any) -> list[types.Tool]:
        return [
            tool.model_copy(update={"name": f"{server}{self.sep}{tool.name}"})
            for server, upstream in self.upstreams.items()
            for tool in upstream.catalogue.tools
            if self.allows(caller, server, tool.name)
        ]

    def prompts(self, caller: Any) -> list[types.Prompt]:
        return [
            prompt.model_copy(update={"name": f"{server}{self.sep}{prompt.name}"})
            for server, upstream in self.upstreams.items()
            for prompt in upstream.catalogue.prompts
            if self.allows(caller, server, prompt.name)
        ]

    def resources(self, caller: Any) -> dict[str, tuple[str, types.Resource]]:
        """URI → (its owner, the resource): the first server listing a URI owns it."""
        owned: dict[str, tuple[str, types.Resource]] = {}
        for server, upstream in self.upstreams.items():
            for resource in upstream.catalogue.resources:
                if self.allows(caller, server, str(resource.uri)):
                    owned.setdefault(str(resource.uri), (server, resource))
        return owned

    # -- calls ---------------------------------------------------------------------------------------

    def _count(self, caller: Any, full: str, record: Any) -> None:
        """Count the call against its key's and its tool's limits, or refuse it (`RateLimited`)."""
        now = self._wall()
        windows: list[tuple[MinuteWindow, int, str]] = []
        limit = self.config.key_calls_per_minute
        if limit is not None:
            key = getattr(caller, "name", None) or ""
            window = self._key_windows.setdefault(key, MinuteWindow())
            windows.append((window, limit, f"the key's limit of {limit} tool calls a minute"))
        for glob, most in self.config.tool_calls_per_minute:
            if fnmatch.fnmatchcase(full, glob):
                windows.append((self._tool_windows[glob], most, f"the limit of {most} calls a minute on '{glob}'"))
                break
        for window, most, what in windows:
            if window.estimate(now) + 1 > most:
                _fail(record, f"rate limited: {what}")
                wait = window.wait(now, most - 1)
                raise RateLimited(f"rate limited: {what}; retry in {wait:.0f} s", wait)
        for window, _, _ in windows:
            window.add(now, 1)

    def chain(self, server: str) -> list[str]:
        return [server, *(name for name in self.upstreams[server].config.fallback if name in self.upstreams)]

    async def call_tool(self, caller: Any, full: str, arguments: dict[str, Any] | None, record: Any) -> Any:
        """The tool's result from the first server in its chain that can take the call; `record` (an
        `Exchange`, or None) is filled in as it goes."""
        server, tool = self.split(full)
        if record is not None:
            record.proxied, record.models, record.model = True, (full,), tool
            if self.config.log_arguments:
                record.arguments = msgspec.json.encode(arguments or {}).decode()[:_MOST_LOGGED]
        if not self.allows(caller, server, tool):
            raise _refused(record, f"the caller may not use the tool '{full}'")
        if self.config.key_calls_per_minute is not None or self._tool_windows:
            self._count(caller, full, record)
        attempts: list[Attempt] = []
        try:
            return await self._first_served(self.chain(server), tool, arguments, attempts, record)
        finally:
            if record is not None:
                record.attempts = attempts

    async def _first_served(
        self, chain: Sequence[str], tool: str, arguments: dict[str, Any] | None, attempts: list[Attempt], record: Any
    ) -> Any:
        for name in chain:
            breaker = self.breakers[name]
            if not breaker.allow(self._clock()):
                attempts.append(Attempt(f"mcp:{name}", tool, None, "skipped: circuit open", 0.0))
                continue
            began = self._clock()
            try:
                result = await self.upstreams[name].call("call_tool", tool, arguments)
            except Unavailable as exc:
                breaker.record_failure(self._clock())
                attempts.append(Attempt(f"mcp:{name}", tool, None, str(exc), _ms(began, self._clock())))
                continue
            except ToolError as exc:
                breaker.record_success(self._clock())  # it answered: the server is healthy
                attempts.append(Attempt(f"mcp:{name}", tool, None, exc.error.message, _ms(began, self._clock())))
                _fail(record, exc.error.message)
                raise exc.error from None
            except BaseException:
                breaker.release()
                raise
            breaker.record_success(self._clock())
            attempts.append(Attempt(f"mcp:{name}", tool, 200, "ok", _ms(began, self._clock())))
            if record is not None:
                record.provider = f"mcp:{name}"
                if getattr(result, "is_error", False):
                    record.error = "the tool reported an error"
            return result
        reason = "; ".join(a.describe() for a in attempts)
        _fail(record, f"no MCP server could take the call: {reason}")
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=f"No MCP server could take the call: {reason}")],
            is_error=True,
        )

    async def read_resource(self, caller: Any, uri: str) -> Any:
        owner = self.resources(caller).get(uri)
        if owner is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown resource '{uri}'")
        return await self._call(owner[0], "read_resource", uri)

    async def get_prompt(self, caller: Any, full: str, arguments: dict[str, str] | None) -> Any:
        server, name = self.split(full)
        if not self.allows(caller, server, name):
            raise MCPError(types.INVALID_PARAMS, f"the caller may not use the prompt '{full}'")
        return await self._call(server, "get_prompt", name, arguments)

    async def _call(self, server: str, method: str, *args: Any) -> Any:
        try:
            return await self.upstreams[server].call(method, *args)
        except ToolError as exc:
            raise exc.error from None
        except Unavailable as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from None


def build_server(front: Callable[[], Front], name: str = "sidestep") -> Server[Any]:
    """The SDK's low-level server, its handlers asking `front()` (the current one: a reload swaps it)."""

    def caller(ctx: Any) -> tuple[Any, Any]:
        scope = getattr(ctx.request, "scope", None) or {}
        return scope.get(CALLER), scope.get(RECORD)

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=front().tools(caller(ctx)[0]))

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> Any:
        who, record = caller(ctx)
        return await front().call_tool(who, params.name, params.arguments, record)

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[r for _, r in front().resources(caller(ctx)[0]).values()])

    async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> Any:
        return await front().read_resource(caller(ctx)[0], str(params.uri))

    async def list_prompts(ctx: Any, params: Any) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=front().prompts(caller(ctx)[0]))

    async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> Any:
        return await front().get_prompt(caller(ctx)[0], params.name, params.arguments)

    return Server(
        name,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )


def _ms(began: float, now: float) -> float:
    return round((now - began) * 1000, 3)


def _fail(record: Any, reason: str) -> None:
    if record is not None:
        record.error = reason


def _refused(record: Any, reason: str) -> MCPError:
    _fail(record, reason)
    return MCPError(types.INVALID_PARAMS, reason)
