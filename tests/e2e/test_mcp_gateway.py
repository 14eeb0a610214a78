"""The MCP gateway end to end: real MCP servers built with the SDK (one over stdio, one over Streamable HTTP),
the SDK's own client against the gateway's `/mcp`, governance's virtual keys, and the outcome record."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from sidestep.outcome import Exchange
from sidestep.testing import RunningGateway, running_gateway

SERVER = str(Path(__file__).parents[1] / "mcp_server.py")
ALICE, BOB = "sk-alice-mcp", "sk-bob-mcp"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(name: str, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, SERVER, name, "--http", str(port)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """A Streamable HTTP MCP server in its own process (the SDK's MCPServer on uvicorn)."""
    port = _free_port()
    proc = _spawn("web", port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


class Records:
    wants_usage = False

    def __init__(self) -> None:
        self.seen: list[Exchange] = []

    def observe(self, exchange: Exchange) -> None:
        self.seen.append(exchange)


def _config(http_url: str, **mcp: Any) -> dict[str, Any]:
    return {
        "governance": {"keys": {"alice": {"key": ALICE}, "bob": {"key": BOB}}},
        "mcp": {
            "servers": {
                "local": {"command": sys.executable, "args": [SERVER, "local"], "timeout": 5},
                "web": {"url": http_url, "timeout": 5},
            },
            **mcp,
        },
    }


@asynccontextmanager
async def _gateway(config: dict[str, Any], records: Records | None = None) -> AsyncIterator[RunningGateway]:
    async with AsyncExitStack() as stack:
        running: list[RunningGateway] = []
        stack.push_async_callback(_reaped, running)  # runs after the gateway closed: its children are gone
        gw = await stack.enter_async_context(running_gateway(config, observers=[records] if records else ()))
        running.append(gw)
        plugin: Any = gw.gateway.plugin("mcp")
        for upstream in plugin.front.upstreams.values():
            assert await upstream.ready(30), upstream.health()
        yield gw


async def _reaped(running: list[RunningGateway]) -> None:
    """Wait until the closed gateway's stdio servers have exited (their processes reaped)."""
    for gw in running:
        plugin: Any = gw.gateway.plugin("mcp")
        await plugin.closed()


@asynccontextmanager
async def _client(gw: RunningGateway, key: str) -> AsyncIterator[ClientSession]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}))
        read, write = await stack.enter_async_context(streamable_http_client(f"{gw.url}/mcp", http_client=http))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        yield session


async def test_one_catalogue_of_both_servers_and_calls_routed_to_their_owner(http_server: str) -> None:
    records = Records()
    async with _gateway(_config(http_server), records) as gw, _client(gw, ALICE) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"local__echo", "local__add", "web__echo", "web__add"} <= names
        local = await client.call_tool("local__echo", {"text": "hi"})
        web = await client.call_tool("web__echo", {"text": "hi"})
        assert isinstance(local.content[0], types.TextContent) and local.content[0].text == "local: hi"
        assert isinstance(web.content[0], types.TextContent) and web.content[0].text == "web: hi"
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
        assert {"local__greet", "web__greet"} <= prompts
        resources = (await client.list_resources()).resources
        assert [str(r.uri) for r in resources] == ["note://readme"]  # the first server listing a URI owns it
    calls = [ex for ex in records.seen if ex.operation == "mcp" and ex.model == "echo"]
    assert [(ex.provider, ex.principal.name, ex.error) for ex in calls] == [
        ("mcp:local", "alice", None),
        ("mcp:web", "alice", None),
    ]
    assert calls[0].attempts[0].status == 200 and calls[0].proxied


async def test_allow_lists_per_virtual_key(http_server: str) -> None:
    config = _config(http_server, keys={"alice": ["local"], "bob": ["web__add"]})
    async with _gateway(config) as gw:
        async with _client(gw, ALICE) as alice:
            assert {t.name for t in (await alice.list_tools()).tools} == {
                "local__echo",
                "local__add",
                "local__slow",
                "local__crash",
                "local__grow",
                "local__read_file",
                "local__pid",
            }
            with pytest.raises(MCPError, match="may not use the tool 'web__echo'"):
                await alice.call_tool("web__echo", {"text": "x"})
        async with _client(gw, BOB) as bob:
            assert [t.name for t in (await bob.list_tools()).tools] == ["web__add"]
            result = await bob.call_tool("web__add", {"a": 2, "b": 3})
            assert result.structured_content == {"result": 5}


async def test_no_key_no_mcp(http_server: str) -> None:
    async with _gateway(_config(http_server)) as gw, httpx.AsyncClient() as http:
        response = await http.post(f"{gw.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert response.status_code == 401
        response = await http.post(f"{gw.url}/v1/mcp/tools/call", json={"name": "local__add"})
        assert response.status_code == 401


async def test_plain_json_tool_call_and_hostile_bodies(http_server: str) -> None:
    headers = {"Authorization": f"Bearer {ALICE}"}
    async with _gateway(_config(http_server)) as gw, httpx.AsyncClient(headers=headers) as http:
        url = f"{gw.url}/v1/mcp/tools/call"
        ok = await http.post(url, json={"name": "web__add", "arguments": {"a": 1, "b": 2}})
        assert ok.status_code == 200 and ok.json()["structuredContent"] == {"result": 3}
        for body, status in [
            (b"{", 400),
            (b'{"name": 3}', 400),
            (b'{"name": "x", "extra": 1}', 400),
            (b'{"name": "nosuch__tool"}', 404),
            (b'{"name": "notseparated"}', 404),
        ]:
            response = await http.post(url, content=body)
            assert response.status_code == status, (body, response.text)
            assert response.json()["error"]["message"]


async def test_a_crashed_stdio_server_is_restarted(http_server: str) -> None:
    config = _config(http_server, restart_backoff=0.05, restart_max=0.1)
    async with _gateway(config) as gw, _client(gw, ALICE) as client:
        crashed = await client.call_tool("local__crash", {})
        assert crashed.is_error  # no equivalent server to go on to: the failure is the tool's answer
        plugin: Any = gw.gateway.plugin("mcp")
        local = plugin.front.upstreams["local"]
        for _ in range(200):
            if local.state == "up" and local.connects == 2:
                break
            await asyncio.sleep(0.05)
        assert local.health()["restarts"] == 1
        again = await client.call_tool("local__echo", {"text": "back"})
        assert isinstance(again.content[0], types.TextContent) and again.content[0].text == "local: back"


async def test_list_changed_refreshes_the_catalogue(http_server: str) -> None:
    async with _gateway(_config(http_server)) as gw, _client(gw, ALICE) as client:
        await client.call_tool("local__grow", {})
        for _ in range(100):
            if "local__extra" in {t.name for t in (await client.list_tools()).tools}:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the catalogue never listed the new tool")
        extra = await client.call_tool("local__extra", {})
        assert isinstance(extra.content[0], types.TextContent) and extra.content[0].text == "extra"


@asynccontextmanager
async def _http_process(name: str) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    proc = _spawn(name, port)
    try:
        for _ in range(400):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp", proc
    finally:
        proc.terminate()
        proc.wait(10)


async def test_a_dead_http_server_fails_over_to_its_replica() -> None:
    records = Records()
    async with _http_process("primary") as (primary, proc), _http_process("replica") as (replica, _):
        config = {
            "mcp": {
                "servers": {
                    "web": {"url": primary, "timeout": 2, "fallback": ["web2"]},
                    "web2": {"url": replica, "timeout": 2},
                },
                "restart_backoff": 5,
            },
            "resilience": {"breaker": {"failures": 1, "cooldown": 60}},
        }
        async with _gateway(config, records) as gw, _client(gw, "anyone") as client:
            first = await client.call_tool("web__echo", {"text": "a"})
            assert isinstance(first.content[0], types.TextContent) and first.content[0].text == "primary: a"
            proc.kill()
            proc.wait(10)
            second = await client.call_tool("web__echo", {"text": "b"})
            assert isinstance(second.content[0], types.TextContent) and second.content[0].text == "replica: b"
            third = await client.call_tool("web__echo", {"text": "c"})  # the open breaker skips the primary
            assert isinstance(third.content[0], types.TextContent) and third.content[0].text == "replica: c"
    calls = [ex for ex in records.seen if ex.operation == "mcp" and ex.model == "echo"]
    assert [ex.provider for ex in calls] == ["mcp:web", "mcp:web2", "mcp:web2"]
    assert [a.provider for a in calls[1].attempts] == ["mcp:web", "mcp:web2"] and calls[1].attempts[0].status is None
    assert calls[2].attempts[0].reason == "skipped: circuit open"


async def test_cli_lists_servers_and_calls_a_tool(http_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    from sidestep.cli.main import main

    async with _gateway(_config(http_server, keys={"alice": ["local", "web__add"]})) as gw:
        base = ["mcp", "--url", gw.url, "--key", ALICE]
        assert await asyncio.to_thread(main, [*base, "list"]) == 0
        listing = capsys.readouterr().out
        assert "local  stdio  up  breaker closed  restarts 0" in listing
        assert "    web__add" in listing and "web__echo" not in listing
        assert await asyncio.to_thread(main, [*base, "call", "web", "add", "--args", '{"a": 4, "b": 5}']) == 0
        assert '"result": 9' in capsys.readouterr().out
        assert await asyncio.to_thread(main, [*base, "call", "web", "echo", "--args", '{"text": "x"}']) == 1
        assert "403 the caller may not use the tool 'web__echo'" in capsys.readouterr().err
        assert await asyncio.to_thread(main, [*base, "call", "web", "add", "--args", "[1"]) == 2
        assert "--args is not JSON" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["mcp", "--url", gw.url, "list"]) == 1
    assert "cannot reach the gateway" in capsys.readouterr().err


async def test_a_reload_keeps_unchanged_servers_and_client_sessions(http_server: str) -> None:
    from sidestep.config.load import parse_config

    async with _gateway(_config(http_server)) as gw, _client(gw, ALICE) as client:
        before: Any = gw.gateway.plugin("mcp")
        local = before.front.upstreams["local"]
        changed = _config(http_server)
        changed["mcp"]["servers"]["web"]["timeout"] = 7  # changed: reconnected
        gw.gateway.reconfigure(parse_config(changed, source="<test>", env={}))
        after: Any = gw.gateway.plugin("mcp")
        assert after is not before
        assert after.front.upstreams["local"] is local and local.connects == 1  # the same process, not restarted
        web = after.front.upstreams["web"]
        assert web is not before.front.upstreams.get("web") and await web.ready(30)
        result = await client.call_tool("web__echo", {"text": "still here"})  # the session survived the reload
        assert isinstance(result.content[0], types.TextContent) and result.content[0].text == "web: still here"
