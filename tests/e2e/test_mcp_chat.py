"""Tools in chat: MCP tools added to chat requests, official SDKs as clients, the simulator as the model, a real
MCP server (tests/mcp_server.py over stdio) behind the gateway."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anthropic
import httpx
import msgspec
import openai
import pytest

from sidestep.outcome import Exchange
from sidestep.testing import FakeClock, RunningGateway, running_gateway, running_simulators

SERVER = str(Path(__file__).parents[1] / "mcp_server.py")
ALICE, BOB = "sk-alice-chat", "sk-bob-chat"


def _config(sim_url: str, **mcp: Any) -> dict[str, Any]:
    return {
        "providers": {"sim": {"type": "openai", "base_url": sim_url, "api_key": "key-sim"}},
        "routes": {"chat": ["sim/m"], "plain": ["sim/m"]},
        "governance": {"keys": {"alice": {"key": ALICE}, "bob": {"key": BOB}}},
        "mcp": {"servers": {"files": {"command": sys.executable, "args": [SERVER, "files"], "timeout": 5}}, **mcp},
    }


class Records:
    wants_usage = False

    def __init__(self) -> None:
        self.seen: list[Exchange] = []

    def observe(self, exchange: Exchange) -> None:
        self.seen.append(exchange)


@asynccontextmanager
async def _gateway(
    records: Records | None = None,
    wall: FakeClock | None = None,
    server: dict[str, Any] | None = None,
    cache: dict[str, Any] | None = None,
    **mcp: Any,
) -> AsyncIterator[RunningGateway]:
    async with AsyncExitStack() as stack:
        sims = await stack.enter_async_context(running_simulators("sim"))
        plugin: Any = None

        async def reaped() -> None:  # after the gateway closed: its stdio server has exited
            if plugin is not None:
                await plugin.closed()

        stack.push_async_callback(reaped)
        gw = await stack.enter_async_context(
            running_gateway(
                {**_config(sims["sim"].base_url, **mcp), "server": server or {}, **({"cache": cache} if cache else {})},
                observers=[records] if records else (),
                wall_clock=wall or time.time,
            )
        )
        plugin = gw.gateway.plugin("mcp")
        for upstream in plugin.front.upstreams.values():
            assert await upstream.ready(30), upstream.health()
        yield gw


def _sdk(gw: RunningGateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=20)


async def test_pass_through_the_model_calls_an_mcp_tool_and_the_client_runs_it() -> None:
    async with _gateway() as gw, _sdk(gw, ALICE) as client:
        ask: list[Any] = [{"role": "user", "content": "please tool_call=files__add"}]
        own = {"type": "function", "function": {"name": "mine", "parameters": {"type": "object", "properties": {}}}}
        first = await client.chat.completions.create(
            model="chat", messages=ask, tools=[own], extra_headers={"x-sidestep-mcp": "files"}
        )
        calls = first.choices[0].message.tool_calls
        assert first.choices[0].finish_reason == "tool_calls" and calls
        call: Any = calls[0]
        assert call.function.name == "files__add"
        assert msgspec.json.decode(call.function.arguments) == {"a": 1, "b": 1}
        async with httpx.AsyncClient(headers={"authorization": f"Bearer {ALICE}"}) as http:
            ran = await http.post(
                f"{gw.url}/v1/mcp/tools/call",
                json={"name": call.function.name, "arguments": msgspec.json.decode(call.function.arguments)},
            )
        result = ran.json()["content"][0]["text"]
        assert result == "2"
        turns = [*ask, first.choices[0].message.model_dump(exclude_none=True)]
        turns.append({"role": "tool", "tool_call_id": call.id, "content": result})
        final = await client.chat.completions.create(
            model="chat", messages=turns, extra_headers={"x-sidestep-mcp": "files"}
        )
        assert final.choices[0].message.content == f"Echo from sim: 2. {_filler()}"
        plain = await client.chat.completions.create(model="chat", messages=ask)  # no header, no config: no tools
        assert plain.choices[0].finish_reason == "stop"


async def test_tools_per_route_and_key_in_the_anthropic_format_within_the_allow_list() -> None:
    chat = {"routes": {"chat": ["files"]}, "keys": {"bob": ["files"]}}
    async with _gateway(chat=chat, keys={"alice": ["files__add"], "bob": ["files"]}) as gw:
        async with anthropic.AsyncAnthropic(base_url=gw.url, api_key=ALICE, max_retries=0) as claude:
            ask: list[Any] = [{"role": "user", "content": "tool_call=files__echo"}]
            used = await claude.messages.create(model="chat", max_tokens=100, messages=ask)
            # The route gives files' tools, alice's allow-list only `add`: the named `echo` is not offered.
            assert [(b.type, getattr(b, "name", "")) for b in used.content] == [("tool_use", "files__add")]
            bare = await claude.messages.create(model="plain", max_tokens=100, messages=ask)
            assert bare.stop_reason == "end_turn"
        async with anthropic.AsyncAnthropic(base_url=gw.url, api_key=BOB, max_retries=0) as claude:
            keyed = await claude.messages.create(model="plain", max_tokens=100, messages=ask)
            assert [getattr(b, "name", "") for b in keyed.content] == ["files__echo"]


async def test_the_cache_keys_on_the_mcp_tools_a_request_is_given() -> None:
    async with _gateway(cache={"nondeterministic": True}) as gw, _sdk(gw, ALICE) as client:
        ask: list[Any] = [{"role": "user", "content": "tool_call=files__add"}]
        plain = await client.chat.completions.create(model="chat", messages=ask)
        assert plain.choices[0].finish_reason == "stop"
        tooled = await client.chat.completions.with_raw_response.create(
            model="chat", messages=ask, extra_headers={"x-sidestep-mcp": "files"}
        )
        assert tooled.headers["x-sidestep-cache"] == "miss"  # not the answer given without the tools
        assert tooled.parse().choices[0].finish_reason == "tool_calls"


async def test_an_unknown_server_in_the_header_is_a_clear_400() -> None:
    async with _gateway() as gw, _sdk(gw, ALICE) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(
                model="chat",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-sidestep-mcp": "files,nope"},
            )
        assert "x-sidestep-mcp names an unknown MCP server 'nope' (known: files)" in str(refused.value)


async def test_agent_mode_runs_the_tool_and_returns_the_final_answer() -> None:
    records = Records()
    agent = {"routes": ["chat"], "max_steps": 3}
    async with _gateway(records, agent=agent, chat={"routes": {"chat": ["files"]}}) as gw, _sdk(gw, ALICE) as client:
        ask: list[Any] = [{"role": "user", "content": "please tool_call=files__add"}]
        answer = await client.chat.completions.with_raw_response.create(model="chat", messages=ask)
        final = answer.parse()
        assert final.choices[0].finish_reason == "stop"
        assert final.choices[0].message.content == f"Echo from sim: 2. {_filler()}"  # the tool's result: 1 + 1
        assert answer.headers["x-sidestep-mcp-steps"] == "3"
        plain = await client.chat.completions.create(model="plain", messages=ask)  # not an agent route
        assert plain.choices[0].finish_reason == "stop" and "2." not in (plain.choices[0].message.content or "")
    chat = [ex for ex in records.seen if ex.operation == "chat"]
    steps = [(a.provider, a.model, a.status, a.reason) for a in chat[0].attempts]
    assert steps == [
        ("agent", "m", 200, "asked for 1 tool call(s)"),
        ("mcp:files", "files__add", 200, "ok"),
        ("agent", "m", 200, "answered"),
    ]
    assert chat[0].provider == "agent" and chat[0].usage is not None and chat[0].usage.input > 0


async def test_agent_mode_streams_the_final_answer_to_both_sdks() -> None:
    agent = {"routes": ["chat"]}
    async with _gateway(agent=agent, chat={"routes": {"chat": ["files"]}}) as gw, _sdk(gw, ALICE) as client:
        ask: list[Any] = [{"role": "user", "content": "please tool_call=files__add"}]
        stream = await client.chat.completions.create(
            model="chat", messages=ask, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == f"Echo from sim: 2. {_filler()}"
        assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
        async with anthropic.AsyncAnthropic(base_url=gw.url, api_key=ALICE, max_retries=0) as claude:
            async with claude.messages.stream(model="chat", max_tokens=100, messages=ask) as events:
                final = await events.get_final_message()
            assert final.stop_reason == "end_turn"
            assert [getattr(b, "text", "") for b in final.content] == [f"Echo from sim: 2. {_filler()}"]


async def test_agent_mode_stops_at_its_step_limit_with_a_clear_error() -> None:
    agent = {"keys": ["alice"], "max_steps": 1}
    async with _gateway(agent=agent, chat={"keys": {"alice": ["files"]}}) as gw, _sdk(gw, ALICE) as client:
        with pytest.raises(openai.APIStatusError) as stopped:
            await client.chat.completions.create(
                model="plain", messages=[{"role": "user", "content": "tool_call=files__add"}]
            )
        assert stopped.value.status_code == 504
        assert "agent mode: no final answer after 1 model turns" in str(stopped.value)


async def test_tool_calls_are_rate_limited_per_key_and_per_tool() -> None:
    wall = FakeClock(6000.0)  # the start of a minute
    limits = {"key_calls_per_minute": 3, "tools": {"files__add": 1}}
    async with _gateway(wall=wall, limits=limits) as gw:

        async def call(key: str, name: str) -> httpx.Response:
            async with httpx.AsyncClient(headers={"authorization": f"Bearer {key}"}) as http:
                body = {"name": name, "arguments": {"a": 1, "b": 1} if name.endswith("add") else {"text": "x"}}
                return await http.post(f"{gw.url}/v1/mcp/tools/call", json=body)

        assert (await call(ALICE, "files__add")).status_code == 200
        refused = await call(BOB, "files__add")  # the tool's limit is shared by every caller
        assert refused.status_code == 429 and "the limit of 1 calls a minute on 'files__add'" in refused.text
        assert int(refused.headers["retry-after"]) > 60  # the call this minute slides out during the next one
        assert [(await call(ALICE, "files__echo")).status_code for _ in range(3)] == [200, 200, 429]
        assert (await call(BOB, "files__echo")).status_code == 200  # each key its own
        wall.advance(120)
        assert (await call(ALICE, "files__echo")).status_code == 200


@pytest.mark.parametrize("logged", [True, False])
async def test_arguments_are_in_the_request_log_only_when_enabled(tmp_path: Path, logged: bool) -> None:
    log = tmp_path / "requests.jsonl"
    headers = {"authorization": f"Bearer {ALICE}"}
    async with _gateway(server={"request_log": str(log)}, log_arguments=logged) as gw, httpx.AsyncClient() as http:
        body = {"name": "files__echo", "arguments": {"text": "secret-ish"}}
        assert (await http.post(f"{gw.url}/v1/mcp/tools/call", json=body, headers=headers)).status_code == 200
    records = [msgspec.json.decode(line) for line in log.read_bytes().splitlines()]
    calls = [r for r in records if r["operation"] == "mcp_tool_call"]
    assert calls[0]["model"] == "echo"
    assert calls[0].get("arguments") == ('{"text":"secret-ish"}' if logged else None)


def _filler() -> str:
    from sidestep.sim.openai import _FILLER

    return _FILLER
