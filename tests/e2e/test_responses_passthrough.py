"""The Responses API passed through to targets that speak it (`openai`, `azure`'s v1 API), with the official
`openai` SDK as the client and the simulator as the upstream: the body goes up with only the model rewritten,
the answer's bytes (and a stream's) are the simulator's; failover before the first byte (to an Anthropic target,
translated), the Responses end-of-stream rule and in-stream error after it, `mid_stream: continue`, usage
read from `response.completed`; hosted tools and `previous_response_id` skip the targets that do not speak
Responses, and a route with none is a 400 before any call."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from sidestep.outcome import Exchange
from sidestep.sim import responses as sim_responses
from sidestep.testing import RunningSim, running_gateway
from tests.conftest import Sdk
from tests.e2e.test_native_providers import native_config

Sims = dict[str, RunningSim]
EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
SEARCH = {"type": "web_search"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
NOW = 1_760_000_000


class Outcomes:
    wants_usage = True

    def __init__(self) -> None:
        self.seen: list[Exchange] = []

    def observe(self, exchange: Exchange) -> None:
        self.seen.append(exchange)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator's Responses clock stands still, so its bytes can be computed again here."""
    monkeypatch.setattr(sim_responses, "time", SimpleNamespace(time=lambda: float(NOW)))


def _ident(sim_name: str, count: int) -> str:
    return hashlib.sha256(f"{sim_name}{count}".encode()).hexdigest()[:24]


def _sim_answer(body: dict[str, Any], name: str, count: int) -> bytes:
    """What the simulator answered to `body`, its `count`th request: the bytes, computed again."""
    reply = sim_responses.plan(body, name)
    return sim_responses.response(body, str(body["model"]), reply, _ident(name, count))


def _sim_stream(body: dict[str, Any], name: str, count: int) -> bytes:
    reply = sim_responses.plan(body, name)
    return b"".join(sim_responses.events(body, str(body["model"]), reply, _ident(name, count), 8)[0])


def _events(raw: bytes) -> list[dict[str, Any]]:
    lines = raw.decode().split("\n")
    return [json.loads(line[6:]) for line in lines if line.startswith("data: ")]


async def _post(base_url: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.post(f"{base_url}/responses", json=body, headers={"authorization": "Bearer x"})


async def test_passed_through_to_openai_the_answer_is_the_simulators(frozen: None, sdk: Sdk, sims: Sims) -> None:
    outcomes = Outcomes()
    async with running_gateway(native_config(sims, {"smart": ["primary/gpt-sim"]}), observers=[outcomes]) as gw:
        raw = await sdk(gw.base_url).responses.with_raw_response.create(
            model="smart", input="Tell me about failover", instructions="Be brief.", store=False, tools=[WEATHER]
        )
    sent = sims["primary"].sim.received[0]
    assert sent.path == "/v1/responses" and sent.headers["authorization"] == "Bearer key-primary"
    assert sent.body == {
        "model": "gpt-sim",  # rewritten from the route's name; nothing else touched
        "input": "Tell me about failover",
        "instructions": "Be brief.",
        "store": False,
        "tools": [WEATHER],
    }
    assert raw.content == _sim_answer(sent.body, "primary", 1)  # byte for byte
    response = Response.model_validate_json(raw.content)
    assert response.output[0].type == "function_call" and raw.headers["x-sidestep-provider"] == "primary"
    exchange = outcomes.seen[-1]
    assert not exchange.translated and exchange.usage is not None
    assert (exchange.usage.input, exchange.usage.output) == (response.usage.input_tokens, response.usage.output_tokens)  # type: ignore[union-attr]


async def test_a_stream_is_relayed_byte_for_byte(frozen: None, sdk: Sdk, sims: Sims) -> None:
    outcomes = Outcomes()
    async with running_gateway(native_config(sims, {"smart": ["primary/gpt-sim"]}), observers=[outcomes]) as gw:
        answer = await _post(gw.base_url, {"model": "smart", "input": "Tell me about failover", "stream": True})
        async with sdk(gw.base_url).responses.stream(model="smart", input="hello there") as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_response()
        created = await sdk(gw.base_url).responses.create(model="smart", input="hi", stream=True)
        streamed = [event async for event in created]
    sent = sims["primary"].sim.received[0].body
    assert sent is not None and sent["model"] == "gpt-sim" and sent["stream"] is True
    assert answer.content == _sim_stream(sent, "primary", 1)
    for event in _events(answer.content):
        EVENT.validate_python(event)
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.output_text.startswith("Echo from primary: hello there")
    assert streamed[-1].type == "response.completed" and streamed[-1].response.id == streamed[0].response.id
    usage = outcomes.seen[0].usage  # the usage tap read `response.completed` on the way
    assert usage is not None and usage.output > 0 and not outcomes.seen[0].translated
    assert all(r.path == "/v1/responses" for r in sims["primary"].sim.received)


async def test_a_503ing_openai_target_fails_over_to_anthropic_translated(sdk: Sdk, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    config = native_config(sims, {"smart": ["primary/gpt-sim", "backup/claude-sonnet-4-5"]})
    async with running_gateway(config) as gw:
        client = sdk(gw.base_url)
        raw = await client.responses.with_raw_response.create(model="smart", input="hello", tools=[WEATHER])
        async with client.responses.stream(model="smart", input="Tell me about failover") as stream:
            final = await stream.get_final_response()
    answer = raw.parse()
    assert raw.headers["x-sidestep-provider"] == "backup" and answer.output[-1].type == "function_call"
    assert "Echo from backup" in final.output_text
    assert [r.path for r in sims["primary"].sim.received] == ["/v1/responses", "/v1/responses"]
    assert [r.path for r in sims["backup"].sim.received] == ["/v1/messages", "/v1/messages"]


async def test_a_hosted_tool_skips_targets_that_do_not_speak_responses(sdk: Sdk, sims: Sims) -> None:
    kinds = {"primary": "openai", "backup": "anthropic", "third": "vllm"}
    config = native_config(sims, {"smart": ["backup/claude-sonnet-4-5", "third/llama", "primary/gpt-sim"]}, kinds)
    async with running_gateway(config) as gw:
        client = sdk(gw.base_url)
        raw = await client.responses.with_raw_response.create(model="smart", input="News today?", tools=[SEARCH])
        async with client.responses.stream(model="smart", input="News?", tools=[SEARCH]) as stream:
            kinds_seen = [event.type async for event in stream]
        plain = await client.responses.with_raw_response.create(model="smart", input="hi")
    answer = raw.parse()
    assert raw.headers["x-sidestep-provider"] == "primary"
    assert [item.type for item in answer.output] == ["web_search_call", "message"]  # the tool ran upstream
    assert "response.web_search_call.completed" in kinds_seen
    sent = sims["primary"].sim.received[0].body
    assert sent is not None and sent["tools"] == [SEARCH]  # passed through, not dropped
    assert sims["third"].sim.received == []
    assert [r.path for r in sims["backup"].sim.received] == ["/v1/messages"]  # only the plain request
    assert plain.headers["x-sidestep-provider"] == "backup"


async def test_attempts_name_the_skipped_targets(sims: Sims) -> None:
    outcomes = Outcomes()
    config = native_config(sims, {"smart": ["backup/claude-sonnet-4-5", "primary/gpt-sim"]})
    async with running_gateway(config, observers=[outcomes]) as gw:
        answer = await _post(gw.base_url, {"model": "smart", "input": "x", "tools": [{"type": "file_search"}]})
    assert answer.status_code == 200
    reasons = [(a.provider, a.reason) for a in outcomes.seen[-1].attempts]
    assert reasons == [("backup", "skipped: lacks responses"), ("primary", "ok")]


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [SEARCH]},
        {"tools": [{"type": "computer_use_preview", "display_width": 1024}]},
        {"tool_choice": {"type": "file_search"}},
        {"previous_response_id": "resp_abc"},
        {"background": True},
        {"input": [{"type": "item_reference", "id": "msg_1"}]},
        {"input": [{"type": "computer_call_output", "call_id": "c", "output": {}}]},
    ],
)
async def test_a_route_that_cannot_serve_it_is_a_400_before_any_call(
    sdk: Sdk, sims: Sims, extra: dict[str, Any]
) -> None:
    kinds = {"primary": "groq", "backup": "anthropic", "third": "gemini"}
    config = native_config(sims, {"smart": ["backup/claude-sonnet-4-5", "primary/llama", "third/gemini-2.5"]}, kinds)
    async with running_gateway(config) as gw:
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk(gw.base_url).responses.create(**{"model": "smart", "input": "hi", **extra})
    assert refused.value.code == "unsupported_operation" and "capability 'responses'" in refused.value.message
    assert all(running.sim.received == [] for running in sims.values())


async def test_previous_response_id_goes_to_a_responses_target(sdk: Sdk, sims: Sims) -> None:
    config = native_config(sims, {"smart": ["primary/gpt-sim", "backup/claude-sonnet-4-5"]})
    async with running_gateway(config) as gw:
        client = sdk(gw.base_url)
        first = await client.responses.create(model="smart", input="Remember: blue.")
        second = await client.responses.create(model="smart", input="What colour?", previous_response_id=first.id)
        with pytest.raises(openai.BadRequestError) as unknown:  # the provider's own answer, passed on
            await client.responses.create(model="smart", input="x", previous_response_id="resp_nope")
        sims["primary"].sim.set_fault("status=503")
        with pytest.raises(openai.APIStatusError) as down:
            await client.responses.create(model="smart", input="And now?", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.status == "completed"
    assert "resp_nope" in unknown.value.message
    assert down.value.status_code >= 500 and "lacks responses" in down.value.message
    assert sims["backup"].sim.received == []  # the state lives at the provider: never sent elsewhere


async def test_a_model_lacking_responses_is_translated_to_chat(sdk: Sdk, sims: Sims) -> None:
    config = native_config(sims, {"smart": ["primary/gpt-legacy"], "new": ["primary/gpt-sim"]})
    config["providers"]["primary"]["lacks"] = {"gpt-legacy": ["responses"]}
    async with running_gateway(config) as gw:
        client = sdk(gw.base_url)
        legacy = await client.responses.create(model="smart", input="hello")
        async with client.responses.stream(model="smart", input="hello") as stream:
            final = await stream.get_final_response()
        current = await client.responses.create(model="new", input="hello")
        with pytest.raises(openai.BadRequestError):
            await client.responses.create(model="smart", input="hello", tools=[SEARCH])
    paths = [r.path for r in sims["primary"].sim.received]
    assert paths == ["/v1/chat/completions", "/v1/chat/completions", "/v1/responses"]
    assert "Echo from primary" in legacy.output_text and "Echo from primary" in final.output_text
    assert current.status == "completed"


async def test_azure_speaks_responses_on_its_v1_path(sdk: Sdk, sims: Sims) -> None:
    sim = sims["primary"]
    config = {
        "providers": {"az": {"type": "azure", "base_url": sim.base_url.removesuffix("/v1"), "api_key": "k"}},
        "routes": {"smart": ["az/my-deployment"]},
    }
    async with running_gateway(config) as gw:
        client = sdk(gw.base_url)
        answer = await client.responses.create(model="smart", input="hello", tools=[SEARCH])
        chat = await client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "hi"}])
    sent = sim.sim.received
    assert sent[0].path == "/openai/v1/responses" and sent[0].headers["api-key"] == "k"
    assert sent[0].body is not None and sent[0].body["model"] == "my-deployment" and not sent[0].query
    assert sent[1].path == "/openai/deployments/my-deployment/chat/completions"
    assert answer.output[0].type == "web_search_call" and chat.choices[0].message.content


async def test_a_passed_through_stream_failing_mid_way_ends_with_response_failed(sdk: Sdk, sims: Sims) -> None:
    config = native_config(sims, {"smart": ["primary/gpt-sim@drop_after=6", "backup/claude-sonnet-4-5"]})
    async with running_gateway(config) as gw:
        answer = await _post(gw.base_url, {"model": "smart", "input": "Tell me about failover", "stream": True})
        stream = await sdk(gw.base_url).responses.create(model="smart", input="Tell me more", stream=True)
        seen = [event async for event in stream]
    events = _events(answer.content)
    kinds = [e["type"] for e in events]
    assert "response.output_text.delta" in kinds and "response.completed" not in kinds
    assert kinds[-2:] == ["error", "response.failed"] and "failed mid-stream" in events[-2]["message"]
    failed = Response.model_validate(events[-1]["response"])
    assert failed.status == "failed" and failed.id == events[0]["response"]["id"]  # the stream's own response
    assert seen[-1].type == "response.failed" and seen[-1].response.id == seen[0].response.id
    assert sims["backup"].sim.received == []  # after the first byte, no silent switch


async def test_a_stream_cut_without_its_end_event_is_judged_incomplete(sims: Sims) -> None:
    # The upstream sends an `error` event and closes cleanly: `response.completed` never came.
    config = native_config(sims, {"smart": ["primary/gpt-sim@stream_error_after=10"]})
    async with running_gateway(config) as gw:
        answer = await _post(gw.base_url, {"model": "smart", "input": "Tell me about failover", "stream": True})
    kinds = [e["type"] for e in _events(answer.content)]
    assert kinds[-2:] == ["error", "response.failed"]


async def test_mid_stream_continue_carries_a_passed_through_stream_on(sims: Sims) -> None:
    kinds = {"primary": "openai", "backup": "anthropic", "third": "openai"}
    route = {"smart": {"fallback": ["primary/gpt-sim@drop_after=6", "third/gpt-sim"], "mid_stream": "continue"}}
    config = native_config(sims, route, kinds)
    config["providers"]["third"]["base_url"] += "/v1"
    async with running_gateway(config) as gw:
        answer = await _post(gw.base_url, {"model": "smart", "input": "Tell me about failover", "stream": True})
    events = _events(answer.content)
    kinds_seen = [e["type"] for e in events]
    assert kinds_seen.count("response.created") == 1 and kinds_seen[-1] == "response.completed"
    final = Response.model_validate(events[-1]["response"])
    assert "Echo from third" in final.output_text and final.id == events[0]["response"]["id"]
    sent = sims["third"].sim.received[0]
    assert sent.path == "/v1/responses" and sent.body is not None  # a Responses body still: passed through
    assert [item["role"] for item in sent.body["input"]] == ["user", "assistant", "user"]
    assert sent.body["input"][1]["content"] and sent.body["input"][2]["content"].startswith("Continue exactly")
    for event in events:
        EVENT.validate_python(event)


@pytest.mark.parametrize("fault", ["error_200", "malformed", "status=429", "reset"])
async def test_the_simulators_faults_fail_over(sdk: Sdk, sims: Sims, fault: str) -> None:
    config = native_config(sims, {"smart": [f"primary/gpt-sim@{fault}", "backup/claude-sonnet-4-5"]})
    async with running_gateway(config) as gw:
        client = sdk(gw.base_url)
        raw = await client.responses.with_raw_response.create(model="smart", input="hello")
        async with client.responses.stream(model="smart", input="hello") as stream:
            final = await stream.get_final_response()
    assert raw.headers["x-sidestep-provider"] == "backup"
    # A stream has no 200-with-an-error-body; its malformed first event, a 429 and a reset fail over too.
    assert f"Echo from {'primary' if fault == 'error_200' else 'backup'}" in final.output_text


async def test_a_content_filter_comes_back_as_the_incomplete_answer_it_is(sdk: Sdk, sims: Sims) -> None:
    config = native_config(sims, {"smart": ["primary/gpt-sim@blocked_output", "backup/claude-sonnet-4-5"]})
    async with running_gateway(config) as gw:
        answer = await sdk(gw.base_url).responses.create(model="smart", input="Tell me about failover")
    assert answer.status == "incomplete" and answer.incomplete_details is not None
    assert answer.incomplete_details.reason == "content_filter" and sims["backup"].sim.received == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"tools": [{"type": 5}]}, "tools[0]"),
        ({"tools": [SEARCH, {"type": "function"}]}, "tools[1].name is required"),
        ({"previous_response_id": 5}, "previous_response_id"),
        ({"previous_response_id": "resp_1\r\nx-injected: 1"}, "previous_response_id"),
        ({"previous_response_id": "r" * 10_000}, "previous_response_id"),
        ({"tools": [SEARCH], "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"tools": [SEARCH] * 10_000}, "tools"),
    ],
)
async def test_hostile_input_is_a_400_in_the_responses_shape(sims: Sims, body: dict[str, Any], needle: str) -> None:
    async with running_gateway(native_config(sims, {"smart": ["primary/gpt-sim"]})) as gw:
        answer = await _post(gw.base_url, {"model": "smart", "input": "hi", **body})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert needle in error["message"] and error["type"] == "invalid_request_error"
    assert sims["primary"].sim.received == []
