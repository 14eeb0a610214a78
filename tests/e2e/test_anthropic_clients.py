"""Anthropic-SDK clients through the gateway: the Messages dialect, served by OpenAI-format providers
(translated both ways, streaming included), with failover and Anthropic-format errors."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types import Message

from sidestep.testing import RunningSim, config_for, running_gateway

Sims = dict[str, RunningSim]
USER = [{"role": "user", "content": "Tell me about failover"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


async def test_messages_served_by_an_openai_provider(claude: Any, sims: Sims) -> None:
    config = config_for(sims, {"claude-ish": ["primary/gpt-4o-mini"]})
    async with running_gateway(config) as gw:
        raw = await claude(gw.url).messages.with_raw_response.create(
            model="claude-ish", max_tokens=200, system="Be brief.", messages=USER
        )
    message = await raw.parse()
    assert isinstance(message, Message)
    assert message.content[0].type == "text" and "Echo from primary" in message.content[0].text
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    assert raw.headers["x-sidestep-provider"] == "primary"
    sent = sims["primary"].sim.received[0].body
    assert sent is not None
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 200 and sent["model"] == "gpt-4o-mini"


async def test_stream_is_anthropic_event_sequence_with_failover(claude: Any, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    config = config_for(sims, {"chat": ["primary/a", "backup/b"]})
    async with (
        running_gateway(config) as gw,
        claude(gw.url).messages.stream(model="chat", max_tokens=100, messages=USER) as stream,
    ):
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start"
    assert "content_block_start" in kinds and "content_block_stop" in kinds
    assert kinds[-1] == "message_stop" and "message_delta" in kinds
    assert "Echo from backup" in final.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


async def test_tool_use_round_trip(claude: Any, sims: Sims) -> None:
    config = config_for(sims, {"chat": ["primary/a"]})
    async with running_gateway(config) as gw:
        client = claude(gw.url)
        first = await client.messages.create(model="chat", max_tokens=100, messages=USER, tools=[WEATHER])
        call = next(block for block in first.content if block.type == "tool_use")
        assert first.stop_reason == "tool_use" and call.name == "get_weather" and call.input == {"city": "example"}
        history: list[Any] = [
            *USER,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
        ]
        second = await client.messages.create(model="chat", max_tokens=100, messages=history, tools=[WEATHER])
    assert second.stop_reason == "end_turn"
    sent = sims["primary"].sim.received[1].body
    assert sent is not None
    assert sent["messages"][1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"example"}',
    }
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]


async def test_streamed_tool_use(claude: Any, sims: Sims) -> None:
    config = config_for(sims, {"chat": ["primary/a"]})
    async with (
        running_gateway(config) as gw,
        claude(gw.url).messages.stream(
            model="chat",
            max_tokens=100,
            messages=USER,
            tools=[WEATHER],
            tool_choice={"type": "tool", "name": "get_weather"},
        ) as stream,
    ):
        final = await stream.get_final_message()
    block = final.content[-1]
    assert block.type == "tool_use" and block.input == {"city": "example"}
    assert final.stop_reason == "tool_use"
    sent = sims["primary"].sim.received[0].body
    assert sent is not None and sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


async def test_image_input_becomes_a_data_url(claude: Any, sims: Sims) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    content = [image, {"type": "text", "text": "What is this?"}]
    async with running_gateway(config_for(sims, {"chat": ["primary/a"]})) as gw:
        await claude(gw.url).messages.create(
            model="chat", max_tokens=50, messages=[{"role": "user", "content": content}]
        )
    sent = sims["primary"].sim.received[0].body
    assert sent is not None
    assert sent["messages"][0]["content"][0] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
    }


async def test_errors_are_anthropic_json(claude: Any, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    config = config_for(sims, {"chat": ["primary/a"]})
    async with running_gateway(config) as gw:
        client = claude(gw.url)
        with pytest.raises(anthropic.NotFoundError) as missing:
            await client.messages.create(model="nope", max_tokens=10, messages=USER)
        with pytest.raises(anthropic.InternalServerError) as failed:
            await client.messages.create(model="chat", max_tokens=10, messages=USER)
        with pytest.raises(anthropic.BadRequestError) as bad:
            await client.messages.create(model="chat", max_tokens=0, messages=USER)
    assert missing.value.body["type"] == "error"  # type: ignore[index]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert "does not exist" in missing.value.message
    assert failed.value.status_code == 502 and "primary/a" in failed.value.message
    assert "max_tokens" in bad.value.message


async def test_count_tokens_skips_targets_without_it(claude: Any, sims: Sims) -> None:
    async with running_gateway(config_for(sims, {"chat": ["primary/a"]})) as gw:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await claude(gw.url).messages.count_tokens(model="chat", messages=USER)
    assert "no count_tokens support" in caught.value.message


async def test_oversized_body_on_messages_path_is_anthropic_json(sims: Sims) -> None:
    import httpx

    config = config_for(sims, {"chat": ["primary/a"]}, server={"max_body_bytes": 1000})
    async with running_gateway(config) as gw, httpx.AsyncClient() as client:
        response = await client.post(f"{gw.url}/v1/messages", content=b"x" * 5000)
    assert response.status_code == 413
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "request_too_large"
