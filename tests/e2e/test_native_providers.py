"""Failover across API formats: OpenAI, Anthropic and Gemini providers (each a simulator speaking its own
wire format) behind one route, for OpenAI-SDK and Anthropic-SDK clients, streaming and not, tools included.
"""

from __future__ import annotations

from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from sidestep.testing import RunningSim, running_gateway
from tests.conftest import Sdk
from tests.sim_helpers import MSG, TOOL

Sims = dict[str, RunningSim]
KINDS = {"primary": "openai", "backup": "anthropic", "third": "gemini"}


def native_config(sims: Sims, routes: dict[str, Any], kinds: dict[str, str] = KINDS) -> dict[str, Any]:
    """primary speaks OpenAI, backup Anthropic, third Gemini; each simulator serves its own format."""
    providers = {
        name: {"type": kinds[name], "base_url": f"http://127.0.0.1:{running.port}", "api_key": f"key-{name}"}
        for name, running in sims.items()
    }
    providers["primary"]["base_url"] += "/v1"
    return {"providers": providers, "routes": routes}


async def test_openai_client_served_by_anthropic(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(native_config(sims, {"chat": ["backup/claude-sonnet-4-5"]})) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "system", "content": "Be brief."}, *MSG], max_tokens=300
        )
    completion = raw.parse()
    assert isinstance(completion, ChatCompletion)
    assert "Echo from backup" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    sent = sims["backup"].sim.received[0]
    assert sent.path == "/v1/messages" and sent.headers["x-api-key"] == "key-backup"
    assert sent.body is not None and sent.body["system"] == "Be brief." and sent.body["max_tokens"] == 300


async def test_openai_client_tools_via_anthropic_and_gemini(sdk: Sdk, sims: Sims) -> None:
    for target in ("backup/claude-sonnet-4-5", "third/gemini-2.5-flash"):
        async with running_gateway(native_config(sims, {"chat": [target]})) as gw:
            completion = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, tools=[TOOL])
        call = (completion.choices[0].message.tool_calls or [])[0]
        assert completion.choices[0].finish_reason == "tool_calls", target
        assert call.function.name == "get_weather" and call.function.arguments == '{"city":"example"}', target


async def test_openai_client_streams_from_anthropic_and_gemini(sdk: Sdk, sims: Sims) -> None:
    for target in ("backup/claude-sonnet-4-5", "third/gemini-2.5-flash"):
        async with running_gateway(native_config(sims, {"chat": [target]})) as gw:
            stream = await sdk(gw.base_url).chat.completions.create(
                model="chat", messages=MSG, stream=True, stream_options={"include_usage": True}
            )
            chunks = [chunk async for chunk in stream]
        assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "Echo from" in text, target
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


async def test_route_fails_over_across_all_formats(sdk: Sdk, claude: Any, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    sims["backup"].sim.set_fault("status=529")
    route = {"chat": ["primary/gpt-4o-mini", "backup/claude-sonnet-4-5", "third/gemini-2.5-flash"]}
    async with running_gateway(native_config(sims, route)) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
        stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        message = await claude(gw.url).messages.create(model="chat", max_tokens=100, messages=MSG)
        async with claude(gw.url).messages.stream(model="chat", max_tokens=100, messages=MSG) as events:
            final = await events.get_final_message()
    assert raw.headers["x-sidestep-provider"] == "third" and raw.headers["x-sidestep-attempts"] == "3"
    assert "Echo from third" in (raw.parse().choices[0].message.content or "")
    assert "Echo from third" in streamed
    assert message.content[0].type == "text" and "Echo from third" in message.content[0].text
    assert final.content[0].type == "text" and "Echo from third" in final.content[0].text


async def test_anthropic_client_to_anthropic_is_pass_through(claude: Any, sims: Sims) -> None:
    body = {
        "model": "chat",
        "max_tokens": 64,
        "messages": MSG,
        "metadata": {"user_id": "u1"},
        "stop_sequences": ["zzz"],
    }
    async with running_gateway(native_config(sims, {"chat": ["backup/claude-haiku-4-5"]})) as gw:
        message = await claude(gw.url).messages.create(**body)
        async with claude(gw.url).messages.stream(model="chat", max_tokens=64, messages=MSG) as stream:
            kinds = [event.type async for event in stream]
    assert "Echo from backup" in message.content[0].text
    sent = sims["backup"].sim.received[0].body
    assert sent == {**body, "model": "claude-haiku-4-5"}  # untouched but for the model
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"


async def test_anthropic_client_tools_via_gemini(claude: Any, sims: Sims) -> None:
    tool = {"name": "get_weather", "input_schema": TOOL["function"]["parameters"]}  # type: ignore[index]
    async with running_gateway(native_config(sims, {"chat": ["third/gemini-2.5-pro"]})) as gw:
        message = await claude(gw.url).messages.create(model="chat", max_tokens=100, messages=MSG, tools=[tool])
    block = message.content[-1]
    assert message.stop_reason == "tool_use" and block.type == "tool_use" and block.input == {"city": "example"}
    sent = sims["third"].sim.received[0]
    assert sent.path == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert sent.body is not None and sent.body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"


async def test_gemini_safety_block_uses_content_policy_fallbacks(sdk: Sdk, sims: Sims) -> None:
    sims["third"].sim.set_fault("blocked")
    route = {"chat": {"fallback": ["third/gemini-2.5-flash"], "fallbacks_on": {"content_policy": ["primary/lenient"]}}}
    async with running_gateway(native_config(sims, route)) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
    assert raw.headers["x-sidestep-provider"] == "primary" and raw.headers["x-sidestep-attempts"] == "2"
