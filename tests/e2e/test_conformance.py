"""The provider contract, table-driven: every provider format (a simulator speaking it) behind the gateway,
with both official SDKs as clients. Answers must validate against the SDKs' own types; each error class
must lead to the right decision (fail over, or return at once).
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pydantic
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from sidestep.sim.faults import FaultSpec
from sidestep.testing import RunningSim, running_gateway
from tests.conftest import Sdk

Sims = dict[str, RunningSim]
PROVIDERS = ["openai", "anthropic", "gemini", "bedrock", "cohere"]
MODEL = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
    "bedrock": "anthropic.claude-3-5-haiku-20241022-v1:0",  # key-primary has no ':': a Bedrock API key
    "cohere": "command-a-03-2025",
}
STREAM_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
OAI_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": SCHEMA}}
CLAUDE_TOOL = {"name": "get_weather", "description": "Weather", "input_schema": SCHEMA}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
TURNS = [
    {"role": "user", "content": "My name is Ada."},
    {"role": "assistant", "content": "Hello Ada."},
    {"role": "user", "content": "What is my name?"},
]


def config(sims: Sims, kind: str, fallback: str | None = None, **route: Any) -> dict[str, Any]:
    """`primary` speaks `kind`; `backup` speaks OpenAI (the fallback when one is asked for)."""
    port = sims["primary"].port
    base = f"http://127.0.0.1:{port}" + ("/v1" if kind == "openai" else "")
    providers = {
        "primary": {"type": kind, "base_url": base, "api_key": "key-primary"},
        "backup": {"type": "openai", "base_url": sims["backup"].base_url, "api_key": "key-backup"},
    }
    targets = [f"primary/{MODEL[kind]}", *([fallback] if fallback else [])]
    return {"providers": providers, "routes": {"chat": {"fallback": targets, **route}}}


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_plain_system_and_multi_turn(kind: str, sdk: Sdk, claude: Any, sims: Sims) -> None:
    async with running_gateway(config(sims, kind)) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "system", "content": "Be brief."}, *TURNS]
        )
        completion = ChatCompletion.model_validate(json.loads(raw.content))
        message = Message.model_validate(
            (
                await claude(gw.url).messages.with_raw_response.create(
                    model="chat", max_tokens=100, system="Be brief.", messages=TURNS
                )
            ).http_response.json()
        )
    assert "What is my name" in (completion.choices[0].message.content or "")
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert message.content[0].type == "text" and "What is my name" in message.content[0].text
    assert message.usage.input_tokens > 0 and message.stop_reason == "end_turn"
    for received in sims["primary"].sim.received:
        assert "Be brief." in json.dumps(received.body)  # the system prompt reached the provider, in its format


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_tools_round_trip(kind: str, sdk: Sdk, claude: Any, sims: Sims) -> None:
    async with running_gateway(config(sims, kind)) as gw:
        client = sdk(gw.base_url)
        first = await client.chat.completions.create(model="chat", messages=TURNS[:1], tools=[OAI_TOOL])
        call = (first.choices[0].message.tool_calls or [])[0]
        history = [
            *TURNS[:1],
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'},
        ]
        second = await client.chat.completions.create(model="chat", messages=history, tools=[OAI_TOOL])
        answer = await claude(gw.url).messages.create(
            model="chat", max_tokens=50, messages=TURNS[:1], tools=[CLAUDE_TOOL]
        )
    assert first.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "example"}
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content
    assert answer.stop_reason == "tool_use" and answer.content[-1].type == "tool_use"


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_image_input_and_json_mode(kind: str, sdk: Sdk, sims: Sims) -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    vision = [{"role": "user", "content": [{"type": "text", "text": "Describe"}, image]}]
    async with running_gateway(config(sims, kind)) as gw:
        client = sdk(gw.base_url)
        await client.chat.completions.create(model="chat", messages=vision)
        await client.chat.completions.create(model="chat", messages=TURNS, response_format={"type": "json_object"})
    sent_image, sent_json = (r.body for r in sims["primary"].sim.received)
    assert PNG in json.dumps(sent_image)  # the image reached the provider in its own shape
    text = json.dumps(sent_json)
    assert "json" in text.lower()  # response_format, a JSON instruction, or responseMimeType


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_streams_validate_with_usage(kind: str, sdk: Sdk, claude: Any, sims: Sims) -> None:
    async with running_gateway(config(sims, kind)) as gw:
        stream = await sdk(gw.base_url).chat.completions.create(
            model="chat", messages=TURNS, stream=True, stream_options={"include_usage": True}
        )
        chunks = [ChatCompletionChunk.model_validate(c.model_dump()) async for c in stream]
        raw = await claude(gw.url).messages.with_raw_response.create(
            model="chat", max_tokens=100, messages=TURNS, stream=True
        )
        events = [STREAM_EVENT.validate_python(e.model_dump()) async for e in await raw.parse()]
    assert "What is my name" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    names = [e.type for e in events]
    assert names[0] == "message_start" and names[-1] == "message_stop" and "message_delta" in names
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.delta.stop_reason == "end_turn" and delta.usage.output_tokens > 0


ERROR_CASES = [
    # (fault, fails over?) — rate limits, overload and server errors move on; a plain bad request does not
    (FaultSpec(status=429, retry_after=1), True),
    (FaultSpec(status=503), True),
    (FaultSpec(status=500), True),
    (FaultSpec(status=529), True),
    (FaultSpec(reset=True), True),
    (FaultSpec(malformed=True), True),
    (FaultSpec(status=400, message="Invalid value for temperature"), False),
]


@pytest.mark.parametrize("kind", PROVIDERS)
@pytest.mark.parametrize(
    ("fault", "fails_over"), ERROR_CASES, ids=lambda v: v.describe() if hasattr(v, "describe") else str(v)
)
async def test_error_classes_decide_failover(
    kind: str, fault: FaultSpec, fails_over: bool, sdk: Sdk, sims: Sims
) -> None:
    sims["primary"].sim.set_fault(fault)
    async with running_gateway(config(sims, kind, fallback="backup/gpt-4o-mini")) as gw:
        client = sdk(gw.base_url)
        if fails_over:
            raw = await client.chat.completions.with_raw_response.create(model="chat", messages=TURNS)
            assert raw.headers["x-sidestep-provider"] == "backup"
        else:
            with pytest.raises(openai.BadRequestError, match="temperature"):
                await client.chat.completions.create(model="chat", messages=TURNS)
            assert sims["backup"].sim.received == []


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_context_window_error_is_recognised(kind: str, sdk: Sdk, sims: Sims) -> None:
    too_long = {
        "openai": "This model's maximum context length is 8192 tokens.",
        "anthropic": "prompt is too long: 250000 tokens > 200000 maximum",
        "gemini": "The input token count exceeds the maximum number of tokens allowed.",
        "bedrock": "Input is too long for requested model.",
        "cohere": "too many tokens: total number of tokens in the prompt cannot exceed 4081 - received 9000",
    }
    sims["primary"].sim.set_fault(FaultSpec(status=400, message=too_long[kind]))
    route = {"fallbacks_on": {"context_window": ["backup/long-context"]}}
    async with running_gateway(config(sims, kind, **route)) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=TURNS)
    assert raw.headers["x-sidestep-model"] == "long-context"
