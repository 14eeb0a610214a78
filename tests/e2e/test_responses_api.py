"""OpenAI-SDK clients on the Responses API (`client.responses.create` / `.stream`): served through the
canonical model by Chat-Completions-only, Anthropic and Gemini targets, streaming and not, tools round trip,
`text.format`, failover; every answer and event validated against the SDK's own types; refusals are 400s in
the Responses error shape. (Passed through to targets that speak Responses: tests/e2e/test_responses_passthrough.py.)"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from sidestep.core.model import Event, Usage
from sidestep.formats.openai_responses import OPENAI_RESPONSES
from sidestep.testing import RunningSim, config_for, running_gateway
from tests.conftest import Sdk
from tests.e2e.test_native_providers import native_config

Sims = dict[str, RunningSim]
EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)


def chat_only(sims: Sims, routes: dict[str, Any]) -> dict[str, Any]:
    """`config_for`, its providers typed `vllm`: OpenAI-compatible, Chat Completions only (no Responses API)."""
    config = config_for(sims, routes)
    for provider in config["providers"].values():
        provider["type"] = "vllm"
    return config


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


async def test_create_served_by_chat_completions(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(chat_only(sims, {"chat": ["primary/gpt-4o-mini"]})) as gw:
        raw = await sdk(gw.base_url).responses.with_raw_response.create(
            model="chat", input="Tell me about failover", instructions="Be brief.", max_output_tokens=200
        )
    response = raw.parse()
    Response.model_validate_json(raw.content)  # strictly: every required field is there
    assert response.status == "completed" and "Echo from primary" in response.output_text
    assert response.usage is not None and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    sent = sims["primary"].sim.received[0]
    assert sent.path == "/v1/chat/completions" and sent.body is not None
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me about failover"},
    ]
    assert sent.body["max_tokens"] == 200 and sent.body["model"] == "gpt-4o-mini"


async def test_stream_is_the_responses_event_sequence_with_failover(sdk: Sdk, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    config = native_config(sims, {"chat": ["primary/gpt-4o-mini", "backup/claude-sonnet-4-5"]})
    async with running_gateway(config) as gw:
        async with sdk(gw.base_url).responses.stream(model="chat", input="Tell me about failover") as stream:
            events = [event async for event in stream]
            final = await stream.get_final_response()
        raw = await _raw_stream(gw.base_url, {"model": "chat", "input": "hello", "stream": True})
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert "response.output_text.delta" in kinds
    tail = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
    assert kinds[-4:] == [*tail, "response.completed"]
    assert "Echo from backup" in final.output_text and final.usage is not None and final.usage.output_tokens > 0
    assert sims["backup"].sim.received[0].path == "/v1/messages"
    for number, event in enumerate(raw):  # each event as the SDK's union reads it, numbered in order
        assert EVENT.validate_python(event).sequence_number == number
    Response.model_validate(raw[-1]["response"])


async def _raw_stream(base_url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=20) as client:
        answer = await client.post(f"{base_url}/responses", json=body, headers={"authorization": "Bearer x"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    lines = answer.text.split("\n")
    return [pydantic.TypeAdapter(dict[str, Any]).validate_json(line[6:]) for line in lines if line[:6] == "data: "]


async def test_tools_round_trip(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(native_config(sims, {"chat": ["backup/claude-sonnet-4-5"]})) as gw:
        client = sdk(gw.base_url)
        first = await client.responses.create(model="chat", input="Weather in Paris?", tools=[WEATHER])
        call = next(item for item in first.output if item.type == "function_call")
        assert call.name == "get_weather" and call.arguments == '{"city":"example"}'
        history: list[Any] = [
            {"role": "user", "content": "Weather in Paris?"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ]
        second = await client.responses.create(model="chat", input=history, tools=[WEATHER])
    assert second.status == "completed" and second.output_text
    sent = sims["backup"].sim.received[1].body
    assert sent is not None
    assert sent["messages"][1]["content"][-1] == {
        "type": "tool_use",
        "id": call.call_id,
        "name": "get_weather",
        "input": {"city": "example"},
    }
    assert sent["messages"][2]["content"][0]["tool_use_id"] == call.call_id
    assert sent["tools"][0]["input_schema"] == WEATHER["parameters"]


async def test_streamed_function_call_arguments(sdk: Sdk, sims: Sims) -> None:
    choice = {"type": "function", "name": "get_weather"}
    async with (
        running_gateway(chat_only(sims, {"chat": ["primary/a"]})) as gw,
        sdk(gw.base_url).responses.stream(
            model="chat", input="Weather?", tools=[WEATHER], tool_choice=choice
        ) as stream,
    ):
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    call = final.output[-1]
    assert call.type == "function_call" and call.arguments == '{"city":"example"}'
    sent = sims["primary"].sim.received[0].body
    assert sent is not None and sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


async def test_text_format_json_schema(sdk: Sdk, sims: Sims) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    fmt = {"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}}
    async with running_gateway(chat_only(sims, {"chat": ["primary/a"]})) as gw:
        response = await sdk(gw.base_url).responses.create(model="chat", input="Where?", text=fmt)
    assert response.status == "completed"
    sent = sims["primary"].sim.received[0].body
    assert sent is not None
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "place", "schema": schema, "strict": True},
    }


_NATIVE_ONLY = "serves responses in its own API, which this request needs (capability 'responses')"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"previous_response_id": "resp_1"}, _NATIVE_ONLY),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, _NATIVE_ONLY),
        ({"tools": [{"type": "web_search"}]}, _NATIVE_ONLY),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, _NATIVE_ONLY),
        ({"tools": [{"type": "computer_use_preview"}]}, _NATIVE_ONLY),
        ({"tool_choice": {"type": "web_search"}}, _NATIVE_ONLY),
        ({"input": [{"type": "web_search_call"}]}, _NATIVE_ONLY),
        ({"input": [3]}, "input[0] must be an object"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role must be one of"),
        ({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "content[0].text must be a string"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "call_id is required"),
        ({"input": [{"type": "robot_call"}]}, "'robot_call' is not supported"),
        ({"tools": [{"type": "web_search"}, {"type": "function"}]}, "tools[1].name is required"),
        ({"input": []}, "'input' is required"),
        ({"input": {"a": 1}}, "'input' is required"),
        ({"instructions": ["x"]}, "'instructions' must be a string"),
        ({"tools": "get_weather"}, "'tools' must be an array"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "'text.format.schema' must be an object"),
        ({"max_output_tokens": "many"}, "'max_output_tokens' must be a number"),
        ({"stream": "yes"}, "'stream' must be a boolean"),
        ({"tool_choice": "sometimes"}, "'tool_choice' 'sometimes' is not supported"),
    ],
)
async def test_refusals_are_clear_400s(sims: Sims, body: dict[str, Any], needle: str) -> None:
    """A route without a target that speaks Responses: what only that API carries is a 400 before any call."""
    async with (
        running_gateway(chat_only(sims, {"chat": ["primary/a"]})) as gw,
        httpx.AsyncClient(timeout=20) as client,
    ):
        answer = await client.post(f"{gw.base_url}/responses", json={"model": "chat", "input": "hi", **body})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert needle in error["message"] and error["type"] in ("invalid_request_error", "upstream_error")
    assert sims["primary"].sim.received == []  # refused before any target was tried


async def test_hostile_bodies_are_400s(sims: Sims) -> None:
    deep = b'{"model":"chat","input":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    bodies = [deep, b"[1,2]", b'{"model":"chat","input":"x"', b"", b'{"input":"hi"}']
    async with (
        running_gateway(config_for(sims, {"chat": ["primary/a"]})) as gw,
        httpx.AsyncClient(timeout=20) as client,
    ):
        for body in bodies:
            answer = await client.post(f"{gw.base_url}/responses", content=body)
            assert answer.status_code == 400, (body[:40], answer.text)
            assert answer.json()["error"]["message"]
        huge = {"model": "chat", "input": "x" * (64 * 1024 * 1024)}
        answer = await client.post(f"{gw.base_url}/responses", json=huge)
        assert answer.status_code == 413 and "error" in answer.json()


async def test_sdk_raises_in_the_responses_error_shape(sdk: Sdk, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    async with running_gateway(chat_only(sims, {"chat": ["primary/a"]})) as gw:
        client = sdk(gw.base_url)
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model="chat", input="hi", tools=[{"type": "web_search"}])
        with pytest.raises(openai.NotFoundError):
            await client.responses.create(model="no-such-route", input="hi")
        with pytest.raises(openai.APIStatusError) as failed:
            await client.responses.create(model="chat", input="hi")
    assert refused.value.code is None or isinstance(refused.value.code, str)
    assert _NATIVE_ONLY in refused.value.message and refused.value.code == "unsupported_operation"
    assert failed.value.status_code >= 500


async def test_served_by_gemini_streaming_and_not(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(native_config(sims, {"chat": ["third/gemini-2.5-flash"]})) as gw:
        client = sdk(gw.base_url)
        response = await client.responses.create(model="chat", input="hello", tools=[WEATHER])
        async with client.responses.stream(model="chat", input="hello") as stream:
            final = await stream.get_final_response()
    call = response.output[-1]
    assert call.type == "function_call" and call.name == "get_weather"
    assert "Echo from third" in final.output_text
    assert ":generateContent" in sims["third"].sim.received[0].path


async def test_a_stream_failing_mid_way_ends_with_an_error_event(sims: Sims) -> None:
    route = {"chat": {"fallback": ["primary/a@drop_after=3", "backup/b"]}}
    async with running_gateway(chat_only(sims, route)) as gw:
        events = await _raw_stream(gw.base_url, {"model": "chat", "input": "Tell me about failover", "stream": True})
    kinds = [e["type"] for e in events]
    assert "response.output_text.delta" in kinds and "response.completed" not in kinds
    assert kinds[-2:] == ["error", "response.failed"]  # the writer's failure: the response as far as it went
    assert "failed mid-stream" in events[-2]["message"]
    failed = Response.model_validate(events[-1]["response"])
    assert failed.status == "failed" and failed.error is not None and "failed mid-stream" in failed.error.message
    assert failed.id == events[0]["response"]["id"]  # the same response the stream opened
    sent = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert sent and failed.output_text == sent  # what was output before the failure
    for event in events:
        EVENT.validate_python(event)
    assert sims["backup"].sim.received == []  # after the first byte, no silent switch (`mid_stream: fail`)


async def test_the_sdk_sees_response_failed_when_a_stream_breaks(sdk: Sdk, sims: Sims) -> None:
    config = native_config(sims, {"chat": {"fallback": ["backup/claude-sonnet-4-5@drop_after=4"]}})
    async with running_gateway(config) as gw:
        client = sdk(gw.base_url)
        stream = await client.responses.create(model="chat", input="Tell me about failover", stream=True)
        seen = [event async for event in stream]
    kinds = [event.type for event in seen]
    assert "response.output_text.delta" in kinds and kinds[-2:] == ["error", "response.failed"]
    failed = seen[-1].response
    assert failed.status == "failed" and failed.id == seen[0].response.id
    assert failed.output and failed.output[0].type == "message"  # the partial answer, as the client saw it


async def test_a_continued_stream_carries_on_in_the_same_message(sims: Sims) -> None:
    route = {"chat": {"fallback": ["primary/a@drop_after=3", "backup/b"], "mid_stream": "continue"}}
    async with running_gateway(chat_only(sims, route)) as gw:
        events = await _raw_stream(gw.base_url, {"model": "chat", "input": "Tell me about failover", "stream": True})
    kinds = [e["type"] for e in events]
    assert kinds.count("response.created") == 1 and kinds.count("response.output_item.added") == 1
    assert kinds[-1] == "response.completed"
    final = Response.model_validate(events[-1]["response"])
    assert "Echo from backup" in final.output_text
    sent = sims["backup"].sim.received[0].body
    assert sent is not None
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]  # the partial answer went along
    assert sent["messages"][1]["content"] and sent["messages"][2]["content"].startswith("Continue exactly")


def test_the_writers_output_reads_back_as_the_same_answer() -> None:
    events = [
        Event(kind="start", id="abc", model="m"),
        Event(kind="thinking", text="hmm"),
        Event(kind="text", text="Hel"),
        Event(kind="text", text="lo"),
        Event(kind="tool_start", index=0, id="call_1", name="get_weather"),
        Event(kind="tool_args", index=0, text='{"city":'),
        Event(kind="tool_args", index=0, text='"Paris"}'),
        Event(kind="finish", finish="tool_calls"),
        Event(kind="usage", usage=Usage(input=5, output=7, reasoning=2)),
        Event(kind="end"),
    ]
    writer = OPENAI_RESPONSES.stream_writer("m", True)
    wire = b"".join(writer.write(e) for e in events)
    back = OPENAI_RESPONSES.stream_reader().feed(wire)
    assert [(e.kind, e.text) for e in back if e.kind in ("text", "thinking", "tool_args")] == [
        ("thinking", "hmm"),
        ("text", "Hel"),
        ("text", "lo"),
        ("tool_args", '{"city":'),
        ("tool_args", '"Paris"}'),
    ]
    assert [e.kind for e in back][-3:] == ["finish", "usage", "end"]
    assert back[-2].usage == Usage(input=5, output=7, reasoning=2)
    completed = next(line for line in wire.split(b"\n") if b'"response.completed"' in line)
    final = Response.model_validate(json.loads(completed[6:])["response"])
    assert final.output_text == "Hello" and final.output[0].type == "reasoning"
    answer = OPENAI_RESPONSES.read_response(
        OPENAI_RESPONSES.write_response(OPENAI_RESPONSES.read_response(final.model_dump_json().encode()))
    )
    assert answer.tool_calls[0].arguments == '{"city":"Paris"}' and answer.finish == "tool_calls"


async def test_stored_responses_are_refused_with_a_400_saying_why(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(config_for(sims, {"chat": ["primary/a"]})) as gw:
        client = sdk(gw.base_url)
        with pytest.raises(openai.BadRequestError) as retrieved:
            await client.responses.retrieve("resp_123")
        with pytest.raises(openai.BadRequestError) as deleted:
            await client.responses.delete("resp_123")
        async with httpx.AsyncClient(timeout=20) as http:
            other = await http.get(f"{gw.base_url}/nothing/here")
    assert (
        "does not store responses" in retrieved.value.message
        and "GET /v1/responses/resp_123" in retrieved.value.message
    )
    assert "DELETE" in deleted.value.message and deleted.value.code == "storage_unavailable"
    assert other.status_code == 404  # other unknown paths stay 404s


async def test_targets_lacking_what_a_responses_request_needs_are_skipped(sdk: Sdk, sims: Sims) -> None:
    config = chat_only(sims, {"chat": ["primary/small", "backup/big"]})
    config["providers"]["primary"]["lacks"] = ["vision", "json_schema"]
    image = {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
    schema = {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}}
    async with running_gateway(config) as gw:
        client = sdk(gw.base_url)
        seen = await client.responses.with_raw_response.create(
            model="chat", input=[{"role": "user", "content": [image, {"type": "input_text", "text": "what?"}]}]
        )
        shaped = await client.responses.with_raw_response.create(model="chat", input="hi", text=schema)
        plain = await client.responses.with_raw_response.create(model="chat", input="hi")
    assert seen.headers["x-sidestep-provider"] == "backup" and shaped.headers["x-sidestep-provider"] == "backup"
    assert plain.headers["x-sidestep-provider"] == "primary"
    sent = sims["backup"].sim.received[0].body
    assert sent is not None and sent["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png")
