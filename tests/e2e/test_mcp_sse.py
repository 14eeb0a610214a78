"""An upstream MCP server over the legacy SSE transport (the SDK's MCPServer in its own process, tests/mcp_server.py
`--sse`), behind the gateway's `/mcp`: listed and called with the SDK's `ClientSession`, and a crashed SSE server
failing over to its replica."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from sidestep.outcome import Exchange
from sidestep.testing import RunningGateway, running_gateway

SERVER = str(Path(__file__).parents[1] / "mcp_server.py")


class Records:
    wants_usage = False

    def __init__(self) -> None:
        self.seen: list[Exchange] = []

    def observe(self, exchange: Exchange) -> None:
        self.seen.append(exchange)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def _sse_server(name: str) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """`tests/mcp_server.py NAME --sse PORT` until it accepts connections; its SSE endpoint's URL."""
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        SERVER,
        name,
        "--sse",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(400):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/sse", proc
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


@asynccontextmanager
async def _gateway(config: dict[str, Any], records: Records) -> AsyncIterator[RunningGateway]:
    async with running_gateway(config, observers=[records]) as gw:
        plugin: Any = gw.gateway.plugin("mcp")
        for upstream in plugin.front.upstreams.values():
            assert await upstream.ready(30), upstream.health()
        yield gw


@asynccontextmanager
async def _client(gw: RunningGateway) -> AsyncIterator[ClientSession]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx2.AsyncClient(headers={"Authorization": "Bearer anyone"}))
        read, write = await stack.enter_async_context(streamable_http_client(f"{gw.url}/mcp", http_client=http))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        yield session


def _text(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent), result
    return first.text


async def test_an_sse_server_is_listed_and_called_through_mcp_and_fails_over_to_its_replica() -> None:
    records = Records()
    async with _sse_server("primary") as (primary, proc), _sse_server("replica") as (replica, _):
        config = {
            "mcp": {
                "servers": {
                    "legacy": {"url": primary, "transport": "sse", "timeout": 2, "fallback": ["legacy2"]},
                    "legacy2": {"url": replica, "transport": "sse", "timeout": 2},
                },
                "restart_backoff": 5,
            },
            "resilience": {"breaker": {"failures": 1, "cooldown": 60}},
        }
        async with _gateway(config, records) as gw, _client(gw) as client:
            plugin: Any = gw.gateway.plugin("mcp")
            assert plugin.front.upstreams["legacy"].health()["transport"] == "sse"
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"legacy__echo", "legacy__add", "legacy2__echo"} <= names
            added = await client.call_tool("legacy__add", {"a": 20, "b": 22})
            assert added.structured_content == {"result": 42}
            assert _text(await client.call_tool("legacy__echo", {"text": "a"})) == "primary: a"
            proc.kill()
            await proc.wait()
            assert _text(await client.call_tool("legacy__echo", {"text": "b"})) == "replica: b"
            assert _text(await client.call_tool("legacy__echo", {"text": "c"})) == "replica: c"  # breaker open
            health = plugin.front.upstreams["legacy"].health()
            assert health["state"] == "down" and health["error"], health
    calls = [ex for ex in records.seen if ex.operation == "mcp" and ex.model == "echo"]
    assert [ex.provider for ex in calls] == ["mcp:legacy", "mcp:legacy2", "mcp:legacy2"]
    failed_over = calls[1].attempts
    assert [a.provider for a in failed_over] == ["mcp:legacy", "mcp:legacy2"] and failed_over[0].status is None
    assert calls[2].attempts[0].reason == "skipped: circuit open"


async def test_an_unreachable_sse_server_is_down_and_its_calls_fail_clearly() -> None:
    gone = f"http://127.0.0.1:{_free_port()}/sse"  # nothing listens there
    config = {"mcp": {"servers": {"gone": {"url": gone, "transport": "sse", "timeout": 1}}, "restart_backoff": 5}}
    async with running_gateway(config) as gw, _client(gw) as client:
        upstream: Any = gw.gateway.plugin("mcp").front.upstreams["gone"]  # type: ignore[union-attr]
        assert not await upstream.ready(10)
        assert upstream.health()["state"] == "down" and "ConnectError" in upstream.health()["error"]
        assert (await client.list_tools()).tools == []
        failed = await client.call_tool("gone__echo", {"text": "x"})
        assert failed.is_error and "No MCP server could take the call" in _text(failed)
