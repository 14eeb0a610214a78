"""Agent mode streamed: the official `openai` SDK streams a chat whose simulated model asks for an MCP tool
(`tool_call=NAME`); the gateway runs it and streams the final answer as the model writes it. The stream starts
while the model thinks (`: keep-alive`), shows each tool step as an SSE comment (which SDKs skip: no tool-call
delta for the client to run), relays the answer chunk by chunk, and fails over, fails and ends as a stream
should."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from sidestep.outcome import Exchange
from sidestep.testing import RunningGateway, running_gateway, running_simulators

SERVER = str(Path(__file__).parents[1] / "mcp_server.py")
KEY = "sk-agent-stream"
ROUTES = {
    "chat": ["sim/m"],
    "flaky": ["sim/m@503", "sim/m"],  # the first target always fails: failover before the first token
    "down": ["sim/m@503"],
    "thinking": ["sim/m@ttft=0.6"],  # each turn's first token takes a while
    "slowly": ["sim/m@chunk_delay=0.05"],  # the answer comes chunk by chunk
}


class Records:
    wants_usage = False

    def __init__(self) -> None:
        self.seen: list[Exchange] = []

    def observe(self, exchange: Exchange) -> None:
        self.seen.append(exchange)


@asynccontextmanager
async def _gateway(
    records: Records | None = None, keepalive: float = 15, **agent: Any
) -> AsyncIterator[RunningGateway]:
    async with AsyncExitStack() as stack:
        sims = await stack.enter_async_context(running_simulators("sim"))
        config = {
            "server": {"sse_keepalive": keepalive},
            "providers": {"sim": {"type": "openai", "base_url": sims["sim"].base_url, "api_key": "key-sim"}},
            "routes": ROUTES,
            "governance": {"keys": {"alice": {"key": KEY}}},
            "mcp": {
                "servers": {"files": {"command": sys.executable, "args": [SERVER, "files"], "timeout": 5}},
                "chat": {"keys": {"alice": ["files"]}},
                "agent": {"keys": ["alice"], **agent},
            },
        }
        gw = await stack.enter_async_context(running_gateway(config, observers=[records] if records else ()))
        plugin: Any = gw.gateway.plugin("mcp")
        assert await plugin.front.upstreams["files"].ready(30)
        yield gw


def _sdk(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.base_url, api_key=KEY, max_retries=0, timeout=20)


async def _raw(client: openai.AsyncOpenAI, model: str, prompt: str) -> list[tuple[float, str]]:
    """The stream's lines as the wire has them (comments included), each with when it arrived."""
    began = time.monotonic()
    async with client.chat.completions.with_streaming_response.create(
        model=model, messages=[{"role": "user", "content": prompt}], stream=True
    ) as response:
        assert response.http_response.status_code == 200
        lines = [(time.monotonic() - began, line) async for line in response.iter_lines() if line]
    return lines


def _filler() -> str:
    from sidestep.sim.openai import _FILLER

    return _FILLER


async def test_the_sdk_streams_the_final_answer_and_sees_no_tool_call_to_run() -> None:
    records = Records()
    async with _gateway(records) as gw, _sdk(gw) as client:
        stream = await client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "please tool_call=files__add"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert all(not d.tool_calls for d in deltas)  # the gateway ran the call: nothing for the client to run
    texts = [d.content for d in deltas if d.content]
    assert "".join(texts) == f"Echo from sim: 2. {_filler()}" and len(texts) > 3  # chunk by chunk, not one piece
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens > 0
    [record] = [ex for ex in records.seen if ex.operation == "chat"]
    assert [(a.provider, a.model, a.status, a.reason) for a in record.attempts] == [
        ("agent", "m", 200, "asked for 1 tool call(s)"),
        ("mcp:files", "files__add", 200, "ok"),
        ("agent", "m", 200, "answered"),
    ]
    assert record.provider == "agent" and record.streamed and record.error is None
    assert record.usage is not None and record.usage.input == usage.prompt_tokens  # the turns' sum, as sent


async def test_tool_steps_are_comments_on_the_wire_before_the_answer() -> None:
    async with _gateway() as gw, _sdk(gw) as client:
        lines = [line for _, line in await _raw(client, "chat", "tool_call=files__echo")]
    calling = lines.index(": sidestep-mcp calling files__echo")
    ran = next(i for i, line in enumerate(lines) if line.startswith(": sidestep-mcp files__echo ok "))
    first_text = next(i for i, line in enumerate(lines) if '"content":"' in line and '"content":""' not in line)
    assert calling < ran < first_text
    assert lines[-1] == "data: [DONE]"
    assert not any('"tool_calls"' in line for line in lines)


async def test_the_stream_starts_while_the_model_thinks_and_relays_as_it_comes() -> None:
    async with _gateway(keepalive=0.1) as gw, _sdk(gw) as client:
        thinking = await _raw(client, "thinking", "tool_call=files__add")
        slowly = await _raw(client, "slowly", "tool_call=files__add")
    first = thinking[0]
    assert first[1] == ": keep-alive" and first[0] < 0.5  # the head and a keep-alive before the first token
    calling = next(i for i, (_, line) in enumerate(thinking) if "calling files__add" in line)
    assert any(line == ": keep-alive" for _, line in thinking[calling:])  # and again while the next turn thinks
    texts = [at for at, line in slowly if '"content":"' in line and '"content":""' not in line]
    assert texts[-1] - texts[0] > 0.3  # the answer's chunks arrived over time: relayed, not gathered


async def test_failover_before_the_first_token_is_invisible() -> None:
    records = Records()
    async with _gateway(records) as gw, _sdk(gw) as client:
        stream = await client.chat.completions.create(
            model="flaky", messages=[{"role": "user", "content": "tool_call=files__add"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == f"Echo from sim: 2. {_filler()}"
    [record] = [ex for ex in records.seen if ex.operation == "chat"]
    assert [a.provider for a in record.attempts] == ["agent", "mcp:files", "agent"]


async def test_a_failure_before_anything_was_said_is_an_error_status() -> None:
    records = Records()
    async with _gateway(records) as gw, _sdk(gw) as client:
        with pytest.raises(openai.APIStatusError) as failed:
            await client.chat.completions.create(
                model="down", messages=[{"role": "user", "content": "tool_call=files__add"}], stream=True
            )
    assert failed.value.status_code == 502
    [record] = [ex for ex in records.seen if ex.operation == "chat"]
    assert record.status == 502 and record.error and record.attempts[0].provider == "agent"


async def test_the_step_limit_after_a_shown_step_ends_the_stream_with_an_error_event() -> None:
    records = Records()
    async with _gateway(records, max_steps=1) as gw, _sdk(gw) as client:
        stream = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "tool_call=files__add"}], stream=True
        )
        with pytest.raises(openai.APIError, match="agent mode: no final answer after 1 model turns"):
            async for _ in stream:
                pass
    [record] = [ex for ex in records.seen if ex.operation == "chat"]
    assert record.status == 200 and record.error == "agent mode: no final answer after 1 model turns"


async def test_a_client_that_leaves_mid_stream_stops_the_loop() -> None:
    records = Records()
    async with _gateway(records, keepalive=0.05) as gw, _sdk(gw) as client:
        async with client.chat.completions.with_streaming_response.create(
            model="chat", messages=[{"role": "user", "content": "tool_call=files__slow"}], stream=True
        ) as response:
            async for line in response.iter_lines():
                if "calling files__slow" in line:
                    break  # leaves while the tool runs
        for _ in range(100):
            if any(ex.operation == "chat" for ex in records.seen):
                break
            await asyncio.sleep(0.01)
        again = await client.chat.completions.create(  # the gateway is fine
            model="chat", messages=[{"role": "user", "content": "tool_call=files__add"}]
        )
        assert again.choices[0].message.content == f"Echo from sim: 2. {_filler()}"
    chat = [ex for ex in records.seen if ex.operation == "chat"]
    assert chat[0].error == "the client disconnected mid-stream"


async def test_a_call_of_the_clients_own_tool_ends_the_stream_for_the_client_to_run() -> None:
    own: Any = {"type": "function", "function": {"name": "mine", "parameters": {"type": "object", "properties": {}}}}
    async with _gateway() as gw, _sdk(gw) as client:
        stream = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "tool_call=mine"}], tools=[own], stream=True
        )
        chunks = [chunk async for chunk in stream]
    calls = [call for c in chunks if c.choices for call in (c.choices[0].delta.tool_calls or [])]
    assert [call.function.name for call in calls if call.function and call.function.name] == ["mine"]
    assert "".join(call.function.arguments or "" for call in calls if call.function) == "{}"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
