"""AWS Bedrock (Converse / ConverseStream) over real HTTP against the simulator: SigV4 and API-key auth, the
binary event-stream, both SDKs as clients, tools, images, error classes — and the issue's acceptance test:
one route across OpenAI, Anthropic, Gemini and Bedrock formats."""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from sidestep.config.load import parse_config
from sidestep.errors import ConfigError
from sidestep.formats.bedrock_converse import StreamReader
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.providers.registry import build_providers
from sidestep.sim import bedrock as simwire
from sidestep.testing import RunningSim, running_gateway, running_simulators
from tests.conftest import Sdk
from tests.sim_helpers import MSG, TOOL, stream_with_both_sdks

Sims = dict[str, RunningSim]
AKID, SECRET = "AKIDSIDESTEPTEST", "c2lkZXN0ZXAtc2VjcmV0"
MODEL = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"  # an inference profile: ':' in the id
PIXEL = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")).decode()


@pytest.fixture
async def aws() -> AsyncIterator[RunningSim]:
    """A simulator that knows the secret for AKID (so it verifies signatures) and one Bedrock API key."""
    async with running_simulators("aws", api_keys={"aws": [f"{AKID}:{SECRET}", "ABSKbedrock-api-key"]}) as sims:
        yield sims["aws"]


def config(
    aws: RunningSim, route: list[str], *, key: str = f"{AKID}:{SECRET}", others: Sims | None = None
) -> dict[str, Any]:
    providers: dict[str, Any] = {
        "aws": {"type": "bedrock", "base_url": f"http://127.0.0.1:{aws.port}", "region": "eu-west-1", "api_key": key}
    }
    kinds = {"primary": "openai", "backup": "anthropic", "third": "gemini"}
    for name, running in (others or {}).items():
        url = f"http://127.0.0.1:{running.port}" + ("/v1" if kinds[name] == "openai" else "")
        providers[name] = {"type": kinds[name], "base_url": url, "api_key": f"key-{name}"}
    return {"providers": providers, "routes": {"chat": route}}


async def test_sigv4_signed_converse_answers_an_openai_client(sdk: Sdk, aws: RunningSim) -> None:
    async with running_gateway(config(aws, [f"aws/{MODEL}"])) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "system", "content": "Be brief."}, *MSG], max_tokens=300
        )
    completion = raw.parse()
    assert isinstance(completion, ChatCompletion) and raw.headers["x-sidestep-provider"] == "aws"
    assert "Echo from aws" in (completion.choices[0].message.content or "")
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    sent = aws.sim.received[0]
    assert sent.path == "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    assert sent.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AKID}/")
    assert "/eu-west-1/bedrock/aws4_request" in sent.headers["authorization"]  # the configured region signs
    assert sent.body == {
        "messages": [{"role": "user", "content": [{"text": "Tell me about failover"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 300},
    }


async def test_a_wrong_secret_is_rejected_and_the_key_rotates(sdk: Sdk, aws: RunningSim) -> None:
    cfg = config(aws, [f"aws/{MODEL}"])
    cfg["providers"]["aws"].pop("api_key")
    cfg["providers"]["aws"]["keys"] = [{"value": f"{AKID}:wrong-secret", "weight": 100}, "ABSKbedrock-api-key"]
    async with running_gateway(cfg, rng=random.Random(1)) as gw:  # a seed whose first draw is the wrong secret
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
    assert raw.headers["x-sidestep-attempts"] == "2"  # the signature check failed, then the API key served
    first, second = aws.sim.received
    assert first.headers["authorization"].startswith("AWS4-HMAC-SHA256")
    assert second.headers["authorization"] == "Bearer ABSKbedrock-api-key"


async def test_streams_from_the_binary_event_stream(sdk: Sdk, claude: Any, aws: RunningSim) -> None:
    async with running_gateway(config(aws, [f"aws/{MODEL}"])) as gw:
        chunks, kinds, final = await stream_with_both_sdks(sdk(gw.base_url), claude(gw.url), MSG)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert "Echo from aws" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "Echo from aws" in final.content[0].text and final.usage.output_tokens > 0  # type: ignore[union-attr]
    assert aws.sim.received[0].path.endswith("/converse-stream")


async def test_tools_round_trip_for_both_sdks(sdk: Sdk, claude: Any, aws: RunningSim) -> None:
    async with running_gateway(config(aws, [f"aws/{MODEL}"])) as gw:
        client = sdk(gw.base_url)
        first = await client.chat.completions.create(model="chat", messages=MSG, tools=[TOOL])
        call = (first.choices[0].message.tool_calls or [])[0]
        follow_up = [
            *MSG,
            {"role": "assistant", "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'},
        ]
        second = await client.chat.completions.create(model="chat", messages=follow_up, tools=[TOOL])
        tool = {"name": "get_weather", "input_schema": TOOL["function"]["parameters"]}  # type: ignore[index]
        async with claude(gw.url).messages.stream(model="chat", max_tokens=100, messages=MSG, tools=[tool]) as s:
            message = await s.get_final_message()
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"example"}' and call.id.startswith("tooluse_")
    assert "Echo from aws" in (second.choices[0].message.content or "")
    sent = aws.sim.received[1].body
    assert sent is not None and sent["messages"][1]["content"][0]["toolUse"]["toolUseId"] == call.id
    assert sent["messages"][2]["content"][0]["toolResult"] == {
        "toolUseId": call.id,
        "content": [{"text": '{"temp": 21}'}],
    }
    block = message.content[-1]
    assert message.stop_reason == "tool_use" and block.type == "tool_use" and block.input == {"city": "example"}


async def test_images_go_as_bytes_and_json_mode_as_an_instruction(sdk: Sdk, aws: RunningSim) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    async with running_gateway(config(aws, [f"aws/{MODEL}"])) as gw:
        completion = await sdk(gw.base_url).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": content}], response_format={"type": "json_object"}
        )
    assert completion.choices[0].message.content == '{"answer":"from aws"}'
    sent = aws.sim.received[0].body
    assert sent is not None and sent["messages"][0]["content"][1] == {
        "image": {"format": "png", "source": {"bytes": PIXEL}}
    }
    assert "single JSON object" in sent["system"][0]["text"]


@pytest.mark.parametrize(
    ("fault", "status", "retryable"),
    [("status=429", 429, True), ("status=503", 503, True), ("status=424", 424, True), ("status=400", 400, False)],
)
async def test_error_classes_decide_failover(
    sdk: Sdk, aws: RunningSim, sims: Sims, fault: str, status: int, retryable: bool
) -> None:
    route = [f"aws/{MODEL}@{fault}", "primary/gpt-4o-mini"]
    async with running_gateway(config(aws, route, others={"primary": sims["primary"]})) as gw:
        if retryable:
            raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
            assert raw.headers["x-sidestep-provider"] == "primary"
        else:
            with pytest.raises(Exception, match="Malformed input request") as caught:
                await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG)
            assert getattr(caught.value, "status_code", None) == status
            assert sims["primary"].sim.received == []  # a caller error is returned at once


async def test_context_window_and_guardrail_use_their_fallback_lists(sdk: Sdk, aws: RunningSim, sims: Sims) -> None:
    too_long = f"aws/{MODEL}@status=400,message=Input is too long for requested model."
    for first, kind in ((too_long, "context_window"), (f"aws/{MODEL}@blocked", "content_policy")):
        cfg = config(aws, [], others={"primary": sims["primary"]})
        cfg["routes"]["chat"] = {"fallback": [first], "fallbacks_on": {kind: ["primary/gpt-4o-mini"]}}
        async with running_gateway(cfg) as gw:
            raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
            stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
            if kind == "context_window":  # refused before any byte: the stream fails over too
                text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
                assert "Echo from primary" in text
            else:  # ConverseStream sends the guardrail's text first and says why only at messageStop
                with pytest.raises(Exception, match="guardrail_intervened"):
                    async for _ in stream:
                        pass
        assert raw.headers["x-sidestep-provider"] == "primary", kind


async def test_a_mid_stream_exception_frame_ends_the_stream_with_an_error(sdk: Sdk, aws: RunningSim) -> None:
    async with running_gateway(config(aws, [f"aws/{MODEL}@stream_error_after=3"])) as gw:
        stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
        with pytest.raises(Exception, match="modelStreamErrorException"):
            async for _ in stream:
                pass


def test_event_stream_frames_decode_when_split_at_every_byte() -> None:
    reply = simwire.plan_reply({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}, "aws")
    frames, _ = simwire.stream_events(reply, 4)
    whole = b"".join(frames)
    expected = [(e.kind, e.text) for e in StreamReader().feed(whole)]
    assert expected[0][0] == "start" and expected[-2:] == [("usage", ""), ("end", "")]
    for cut in range(1, len(whole)):
        reader = StreamReader()
        events = reader.feed(whole[:cut]) + reader.feed(whole[cut:])
        assert [(e.kind, e.text) for e in events] == expected


def test_a_corrupt_frame_is_a_malformed_stream() -> None:
    frame = bytearray(simwire.stream_error("boom"))
    frame[-1] ^= 0xFF  # break the message CRC
    with pytest.raises(ValueError, match="malformed event-stream"):
        StreamReader().feed(bytes(frame))


def test_region_picks_the_endpoint_and_settings_hold_credentials() -> None:
    raw = {
        "providers": {
            "aws": {
                "type": "bedrock",
                "region": "ap-south-1",
                "access_key_id": "AKID",
                "secret_access_key": "wJalrSECRET",
            }
        }
    }
    cfg = parse_config(raw, env={})
    provider = build_providers(cfg.providers)["aws"]
    request = provider.build("chat", MODEL, {"model": "x", "messages": MSG}, cfg.providers["aws"].keys[0], OPENAI_CHAT)
    assert request.url.startswith("https://bedrock-runtime.ap-south-1.amazonaws.com/model/")
    assert dict(request.headers)["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID/")
    assert "wJalrSECRET" not in repr(cfg.providers["aws"].settings)  # the secret setting is a Secret
    with pytest.raises(ConfigError, match=r"providers\.aws\.regoin: unknown key"):
        parse_config({"providers": {"aws": {"type": "bedrock", "regoin": "x"}}}, env={})


async def test_one_route_across_four_api_formats(sdk: Sdk, claude: Any, aws: RunningSim, sims: Sims) -> None:
    """The issue's acceptance test: OpenAI, Anthropic and Gemini fail; Bedrock serves — both SDKs, stream and
    not, tools included; then Bedrock fails and the others serve."""
    route = ["primary/gpt-4o-mini@503", "backup/claude-sonnet-4-5@529", "third/gemini-2.5-flash@503", f"aws/{MODEL}"]
    tool = {"name": "get_weather", "input_schema": TOOL["function"]["parameters"]}  # type: ignore[index]
    async with running_gateway(config(aws, route, others=sims)) as gw:
        oai: Callable[..., Any] = sdk(gw.base_url).chat.completions.with_raw_response.create
        raw = await oai(model="chat", messages=MSG, tools=[TOOL])
        stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        message = await claude(gw.url).messages.create(model="chat", max_tokens=100, messages=MSG, tools=[tool])
        async with claude(gw.url).messages.stream(model="chat", max_tokens=100, messages=MSG) as events:
            final = await events.get_final_message()
    assert raw.headers["x-sidestep-provider"] == "aws" and raw.headers["x-sidestep-attempts"] == "4"
    assert raw.parse().choices[0].message.tool_calls[0].function.name == "get_weather"
    assert "Echo from aws" in streamed
    assert message.stop_reason == "tool_use" and message.content[-1].type == "tool_use"
    assert "Echo from aws" in final.content[0].text  # type: ignore[union-attr]
    reverse = [f"aws/{MODEL}@503", "third/gemini-2.5-flash", "backup/claude-sonnet-4-5", "primary/gpt-4o-mini"]
    async with running_gateway(config(aws, reverse, others=sims)) as gw:
        message = await claude(gw.url).messages.create(model="chat", max_tokens=100, messages=MSG)
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
    assert "Echo from third" in message.content[0].text  # type: ignore[union-attr]
    assert raw.headers["x-sidestep-provider"] == "third"
