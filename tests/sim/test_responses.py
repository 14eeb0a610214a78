"""The simulator's Responses API (`POST /v1/responses`, Azure's `/openai/v1/responses`): answers and every
stream event validated by the openai SDK's own types, function calls (`tool_call=NAME`), a hosted web search,
`previous_response_id` checked against the responses it made (a bounded memory), refusals and faults."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pydantic
import pytest
from openai.types.responses import Response as SdkResponse
from openai.types.responses import ResponseStreamEvent

from sidestep.server.types import Request, Response, StreamingResponse
from sidestep.sim import Simulator
from sidestep.sim import app as sim_app

EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}


def post(body: dict[str, Any], path: str = "/v1/responses", headers: dict[str, str] | None = None) -> Request:
    return Request("POST", path, "", headers or {}, msgspec.json.encode(body))


async def answer(sim: Simulator, body: dict[str, Any], path: str = "/v1/responses") -> tuple[int, bytes]:
    response = await sim.handle(post(body, path))
    if isinstance(response, Response):
        return response.status, response.body
    assert isinstance(response, StreamingResponse)
    return response.status, b"".join([piece async for piece in response.body])


def data(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in raw.decode().split("\n") if line.startswith("data: ")]


async def test_an_answer_is_the_sdks_response() -> None:
    sim = Simulator(name="s")
    status, raw = await answer(sim, {"model": "m", "input": "hello simulator", "instructions": "Be brief."})
    response = SdkResponse.model_validate_json(raw)
    assert status == 200 and response.output_text.startswith("Echo from s: hello simulator")
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert response.instructions == "Be brief." and response.id in sim.response_ids


async def test_a_stream_is_the_event_sequence_the_sdk_reads() -> None:
    status, raw = await answer(Simulator(), {"model": "m", "input": "hello", "stream": True})
    events = data(raw)
    assert status == 200 and [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        EVENT.validate_python(event)
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == SdkResponse.model_validate(events[-1]["response"]).output_text


@pytest.mark.parametrize("stream", [False, True])
async def test_function_calls_and_a_hosted_search(stream: bool) -> None:
    body = {"model": "m", "input": "go tool_call=get_weather", "tools": [{"type": "web_search"}, WEATHER]}
    _, raw = await answer(Simulator(), {**body, "stream": stream})
    final = data(raw)[-1]["response"] if stream else json.loads(raw)
    kinds = [item["type"] for item in SdkResponse.model_validate(final).model_dump()["output"]]
    assert kinds == ["web_search_call", "function_call"] and final["output"][1]["name"] == "get_weather"
    if stream:
        assert "response.web_search_call.searching" in [e["type"] for e in data(raw)]


async def test_a_tool_result_is_echoed() -> None:
    items = [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny and warm"},
    ]
    _, raw = await answer(Simulator(name="s"), {"model": "m", "input": items, "tools": [WEATHER]})
    assert "sunny and warm" in SdkResponse.model_validate_json(raw).output_text


async def test_previous_response_id_must_be_one_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim_app, "RESPONSES_LIMIT", 2)
    sim = Simulator()
    _, first = await answer(sim, {"model": "m", "input": "a"})
    made = json.loads(first)["id"]
    status, _ = await answer(sim, {"model": "m", "input": "b", "previous_response_id": made})
    assert status == 200
    status, refused = await answer(sim, {"model": "m", "input": "b", "previous_response_id": "resp_unknown"})
    assert status == 400 and "resp_unknown" in json.loads(refused)["error"]["message"]
    for _ in range(3):
        await answer(sim, {"model": "m", "input": "c"})
    assert len(sim.response_ids) == 2 and made not in sim.response_ids  # bounded: the oldest are forgotten


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "m"}, "'input'"),
        ({"model": "m", "input": []}, "'input'"),
        ({"model": "m", "input": "x", "messages": []}, "messages"),
    ],
)
async def test_what_openai_refuses(body: dict[str, Any], needle: str) -> None:
    status, raw = await answer(Simulator(), body)
    assert status == 400 and needle in json.loads(raw)["error"]["message"]


async def test_faults_and_azures_path() -> None:
    sim = Simulator()
    status, raw = await answer(sim, {"model": "m@error_200", "input": "x"})
    assert status == 200 and "error" in json.loads(raw)
    status, raw = await answer(sim, {"model": "m@status=503", "input": "x"})
    assert status == 503
    status, raw = await answer(sim, {"model": "m@stream_error_after=5", "input": "x", "stream": True})
    assert [e["type"] for e in data(raw)][-1] == "error"
    status, raw = await answer(sim, {"model": "deployment", "input": "x"}, "/openai/v1/responses")
    assert status == 200 and json.loads(raw)["model"] == "deployment"
