"""Cohere Chat v2 over real HTTP against the simulator, with both SDKs as clients: plain, system, streaming
with usage, tools round trip, JSON mode, error classes, and failover into and out of Cohere."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from sidestep.formats.cohere_v2 import StreamReader
from sidestep.sim import cohere as simwire
from sidestep.testing import RunningSim, running_gateway
from tests.conftest import Sdk
from tests.sim_helpers import MSG, TOOL, stream_with_both_sdks

Sims = dict[str, RunningSim]


def config(sims: Sims, route: list[str]) -> dict[str, Any]:
    port = lambda name: sims[name].port  # noqa: E731
    return {
        "providers": {
            "co": {"type": "cohere", "base_url": f"http://127.0.0.1:{port('third')}", "api_key": "key-co"},
            "primary": {"type": "openai", "base_url": sims["primary"].base_url, "api_key": "key-primary"},
            "backup": {"type": "anthropic", "base_url": f"http://127.0.0.1:{port('backup')}", "api_key": "key-b"},
        },
        "routes": {"chat": route},
    }


async def test_openai_client_served_by_cohere(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(config(sims, ["co/command-a-03-2025"])) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "system", "content": "Be brief."}, *MSG], max_tokens=200, top_p=0.5
        )
    completion = raw.parse()
    assert isinstance(completion, ChatCompletion) and raw.headers["x-sidestep-provider"] == "co"
    assert "Echo from third" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop" and completion.usage is not None
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    sent = sims["third"].sim.received[0]
    assert sent.path == "/v2/chat" and sent.headers["authorization"] == "Bearer key-co"
    assert sent.body == {
        "model": "command-a-03-2025",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about failover"}],
        "stream": False,
        "max_tokens": 200,
        "p": 0.5,
    }


async def test_streams_for_both_sdks(sdk: Sdk, claude: Any, sims: Sims) -> None:
    async with running_gateway(config(sims, ["co/command-r-plus"])) as gw:
        chunks, kinds, final = await stream_with_both_sdks(sdk(gw.base_url), claude(gw.url), MSG)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert "Echo from third" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "Echo from third" in final.content[0].text  # type: ignore[union-attr]


async def test_tools_round_trip_and_json_mode(sdk: Sdk, claude: Any, sims: Sims) -> None:
    async with running_gateway(config(sims, ["co/command-r-plus"])) as gw:
        client = sdk(gw.base_url)
        first = await client.chat.completions.create(model="chat", messages=MSG, tools=[TOOL], tool_choice="required")
        call = (first.choices[0].message.tool_calls or [])[0]
        follow = [*MSG, {"role": "assistant", "tool_calls": [call.model_dump()]}]
        follow.append({"role": "tool", "tool_call_id": call.id, "content": "21 degrees"})
        second = await client.chat.completions.create(model="chat", messages=follow, tools=[TOOL])
        stream = await client.chat.completions.create(model="chat", messages=MSG, tools=[TOOL], stream=True)
        streamed = "".join(
            [
                (c.choices[0].delta.tool_calls or [None])[0].function.arguments or ""
                async for c in stream
                if c.choices and c.choices[0].delta.tool_calls
            ]
        )  # type: ignore[union-attr]
        json_answer = await client.chat.completions.create(
            model="chat", messages=MSG, response_format={"type": "json_object"}
        )
        tool = {"name": "get_weather", "input_schema": TOOL["function"]["parameters"]}  # type: ignore[index]
        message = await claude(gw.url).messages.create(model="chat", max_tokens=100, messages=MSG, tools=[tool])
    assert first.choices[0].finish_reason == "tool_calls" and call.function.arguments == '{"city":"example"}'
    assert "Echo from third" in (second.choices[0].message.content or "")
    assert streamed == '{"city":"example"}'
    assert json_answer.choices[0].message.content == '{"answer":"from third"}'
    assert message.stop_reason == "tool_use" and message.content[-1].input == {"city": "example"}  # type: ignore[union-attr]
    sent = [r.body for r in sims["third"].sim.received]
    assert sent[0] is not None and sent[0]["tool_choice"] == "REQUIRED"
    assert sent[1] is not None and sent[1]["messages"][1]["tool_calls"][0]["id"] == call.id
    assert sent[1]["messages"][2] == {"role": "tool", "tool_call_id": call.id, "content": "21 degrees"}
    assert sent[3] is not None and sent[3]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(("fault", "fails_over"), [("429", True), ("503", True), ("500", True), ("400", False)])
async def test_error_classes_decide_failover(sdk: Sdk, sims: Sims, fault: str, fails_over: bool) -> None:
    async with running_gateway(config(sims, [f"co/command-r@{fault}", "primary/gpt-4o-mini"])) as gw:
        if fails_over:
            raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
            assert raw.headers["x-sidestep-provider"] == "primary"
        else:
            with pytest.raises(Exception, match="invalid request"):
                await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG)
            assert sims["primary"].sim.received == []


async def test_failover_into_and_out_of_cohere(sdk: Sdk, claude: Any, sims: Sims) -> None:
    into = ["primary/gpt-4o-mini@503", "co/command-r"]
    out_of = ["co/command-r@stream_error_after=1", "backup/claude-sonnet-4-5"]
    async with running_gateway(config(sims, into)) as gw:
        message = await claude(gw.url).messages.create(model="chat", max_tokens=100, messages=MSG)
    async with running_gateway(config(sims, out_of)) as gw:
        stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert "Echo from third" in message.content[0].text  # type: ignore[union-attr]
    assert "Echo from backup" in text  # the error event came before any content: failover was invisible


def test_stream_reader_across_arbitrary_splits() -> None:
    reply = simwire.plan_reply({"model": "m", "messages": MSG}, "co")
    events, _ = simwire.stream_events(reply, "id1", 5)
    whole = b"".join(events)
    expected = [(e.kind, e.text) for e in StreamReader().feed(whole)]
    assert expected[0][0] == "start" and expected[-3:] == [("finish", ""), ("usage", ""), ("end", "")]
    for cut in range(1, len(whole), 7):
        reader = StreamReader()
        assert [(e.kind, e.text) for e in reader.feed(whole[:cut]) + reader.feed(whole[cut:])] == expected


async def test_embeddings_via_cohere_for_the_openai_sdk(sdk: Sdk, sims: Sims) -> None:
    """The SDK asks for base64 by default; floats when asked. Failover from an OpenAI embeddings target too."""
    route = ["primary/text-embedding-3-small@503", "co/embed-v4.0"]
    async with running_gateway(config(sims, route)) as gw:
        client = sdk(gw.base_url)
        packed = await client.embeddings.with_raw_response.create(model="chat", input=["alpha beta", "gamma"])
        floats = await client.embeddings.create(model="chat", input="alpha beta", encoding_format="float")
        short = await client.embeddings.create(model="chat", input="alpha beta", dimensions=8)
    answer = packed.parse()
    assert packed.headers["x-sidestep-provider"] == "co" and packed.headers["x-sidestep-attempts"] == "2"
    assert [d.index for d in answer.data] == [0, 1] and len(answer.data[0].embedding) == 1024
    assert answer.usage.prompt_tokens == 3 and answer.model == "embed-v4.0"
    assert floats.data[0].embedding == pytest.approx(answer.data[0].embedding, rel=1e-6)  # base64 = float32 of it
    assert len(short.data[0].embedding) == 8
    first = sims["primary"].sim.received[0].body
    assert first is not None and first["encoding_format"] == "base64"  # what the SDK asks for by default
    sent = [r for r in sims["third"].sim.received if r.path == "/v2/embed"]
    assert sent[0].body == {
        "model": "embed-v4.0",
        "texts": ["alpha beta", "gamma"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    assert sent[2].body is not None and sent[2].body["output_dimension"] == 8


async def test_token_array_embeddings_are_a_clear_400_for_cohere(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(config(sims, ["co/embed-v4.0"])) as gw:
        with pytest.raises(openai.BadRequestError, match="Cohere embeds text"):
            await sdk(gw.base_url).embeddings.create(model="chat", input=[[1, 2, 3]])
