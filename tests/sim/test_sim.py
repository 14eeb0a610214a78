"""The provider simulator: fault grammar, scenarios, and OpenAI wire format checked with the SDK's types."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from sidestep.server.types import AbortConnection, Request, Response, StreamingResponse
from sidestep.sim import FaultSpec, Scenario, Simulator, parse_fault, start_simulator

MSG = [{"role": "user", "content": "hello simulator"}]


def post(path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Request:
    return Request("POST", path, "", headers or {}, msgspec.json.encode(body))


async def collect(response: Response | StreamingResponse) -> bytes:
    if isinstance(response, Response):
        return response.body
    return b"".join([piece async for piece in response.body])


def events(raw: bytes) -> list[bytes]:
    return [line[6:] for line in raw.split(b"\n\n") if line.startswith(b"data: ")]


def test_fault_grammar() -> None:
    spec = parse_fault("status=429, retry_after=2.5,retry_after_date,rate=0.5,message=slow down")
    assert spec == FaultSpec(status=429, retry_after=2.5, retry_after_date=True, rate=0.5, message="slow down")
    assert parse_fault("ttft=1,chunk_delay=0.1,chunks=3,drop_after=2").drop_after == 2
    assert parse_fault("hang").hang
    assert parse_fault("latency=0.2").is_healthy
    assert not parse_fault("reset").is_healthy
    assert parse_fault("status=503,retry_after=1").describe() == "status=503,retry_after=1.0"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("status=abc", "status needs a int"),
        ("status=200", "400-599"),
        ("rate=2", "probability"),
        ("hang=1", "flags take no value"),
        ("explode", "bad fault token 'explode'"),
        ("latency=-1", "cannot be negative"),
    ],
)
def test_fault_grammar_errors_name_the_token(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_fault(text)


def test_scenario_windows_models_and_every_nth() -> None:
    scenario = Scenario.from_yaml(
        """
rules:
  - {start: 0, end: 30, fault: "status=503,rate=0.5"}
  - {start: 30, fault: "status=429", models: ["gpt-4*"], every: 2}
"""
    )
    assert scenario.fault_at(10, "x", 1) == parse_fault("status=503,rate=0.5")
    assert scenario.fault_at(31, "gpt-4o", 2) == parse_fault("status=429")
    assert scenario.fault_at(31, "gpt-4o", 3) is None
    assert scenario.fault_at(31, "claude", 2) is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- {fault: 'status=9'}", "rules[0].fault: bad fault token"),
        ("- {start: -1, fault: 'hang'}", "rules[0].start"),
        ("- {fault: 'hang', when: 1}", "unknown field(s) when"),
        ("rules: 3", "expected a list of rules"),
        ("- {fault: 'hang', every: 0}", "rules[0].every"),
    ],
)
def test_scenario_errors_are_precise(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=r".*") as info:
        Scenario.from_yaml(text, "s.yaml")
    assert fragment in str(info.value)
    assert str(info.value).startswith("s.yaml")


async def test_scenario_uses_the_injected_clock() -> None:
    now = [100.0]
    sim = Simulator(scenario=Scenario.from_data([{"start": 5, "end": 10, "fault": "status=503"}]), clock=lambda: now[0])
    body = {"model": "m", "messages": MSG}
    assert (await sim.handle(post("/v1/chat/completions", body))).status == 200
    now[0] += 6
    assert (await sim.handle(post("/v1/chat/completions", body))).status == 503
    now[0] += 5
    assert (await sim.handle(post("/v1/chat/completions", body))).status == 200


async def test_rate_applies_a_fault_to_about_that_share_of_requests() -> None:
    sim = Simulator(seed=7)
    sim.set_fault("status=503,rate=0.3")
    statuses = [
        (await sim.handle(post("/v1/chat/completions", {"model": "m", "messages": MSG}))).status for _ in range(400)
    ]
    assert 90 < statuses.count(503) < 150


async def test_completion_validates_as_the_sdk_type() -> None:
    sim = Simulator(name="alpha")
    body = {"model": "gpt-x", "messages": MSG, "n": 2, "max_tokens": 4}
    completion = ChatCompletion.model_validate_json(await collect(await sim.handle(post("/v1/chat/completions", body))))
    assert completion.model == "gpt-x"
    assert len(completion.choices) == 2
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "Echo from alpha: hello"
    assert completion.usage is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


async def test_stream_chunks_validate_and_end_with_usage_and_done() -> None:
    sim = Simulator(name="beta")
    body = {"model": "m", "messages": MSG, "stream": True, "stream_options": {"include_usage": True}}
    raw = await collect(await sim.handle(post("/v1/chat/completions", body)))
    data = events(raw)
    assert data[-1] == b"[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(d) for d in data[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-2].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Echo from beta: hello simulator.")


async def test_a_named_tool_is_called_and_its_result_answers() -> None:
    sim = Simulator(name="sim")

    def tool(name: str) -> dict[str, Any]:
        return {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}

    ask = [{"role": "user", "content": "please tool_call=files__add now"}]
    body = {"model": "m", "messages": ask, "tools": [tool("files__echo"), tool("files__add")]}
    called = ChatCompletion.model_validate_json(await collect(await sim.handle(post("/v1/chat/completions", body))))
    calls = called.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "files__add"  # type: ignore[union-attr]
    result = {"role": "tool", "tool_call_id": calls[0].id, "content": "the sum is 42"}
    turns = [*ask, called.choices[0].message.model_dump(exclude_none=True), result]
    after = {**body, "messages": turns}
    answer = ChatCompletion.model_validate_json(await collect(await sim.handle(post("/v1/chat/completions", after))))
    assert answer.choices[0].finish_reason == "stop"
    assert (answer.choices[0].message.content or "").startswith("Echo from sim: the sum is 42.")


async def test_tool_calls_and_json_schema() -> None:
    sim = Simulator()
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
                "required": ["q", "n"],
            },
        },
    }
    body = {"model": "m", "messages": MSG, "tools": [tool]}
    completion = ChatCompletion.model_validate_json(await collect(await sim.handle(post("/v1/chat/completions", body))))
    call = completion.choices[0].message.tool_calls
    assert call is not None
    assert completion.choices[0].finish_reason == "tool_calls"
    assert msgspec.json.decode(call[0].function.arguments) == {"q": "example", "n": 1}  # type: ignore[union-attr]
    after = {**body, "messages": [*MSG, {"role": "tool", "tool_call_id": "x", "content": "42"}]}
    answer = ChatCompletion.model_validate_json(await collect(await sim.handle(post("/v1/chat/completions", after))))
    assert answer.choices[0].message.content
    stream = await collect(await sim.handle(post("/v1/chat/completions", {**body, "stream": True})))
    chunks = [ChatCompletionChunk.model_validate_json(d) for d in events(stream)[:-1]]
    args = "".join(
        (c.choices[0].delta.tool_calls[0].function.arguments or "")  # type: ignore[index,union-attr]
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert msgspec.json.decode(args) == {"q": "example", "n": 1}
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
    structured = {"model": "m", "messages": MSG, "response_format": schema}
    answer = ChatCompletion.model_validate_json(
        await collect(await sim.handle(post("/v1/chat/completions", structured)))
    )
    assert msgspec.json.decode(answer.choices[0].message.content or "") == {"city": "example"}


async def test_embeddings_float_and_base64() -> None:
    sim = Simulator()
    raw = await collect(await sim.handle(post("/v1/embeddings", {"model": "e", "input": ["a", "b"], "dimensions": 4})))
    result = CreateEmbeddingResponse.model_validate_json(raw)
    assert [len(d.embedding) for d in result.data] == [4, 4]
    assert abs(sum(v * v for v in result.data[0].embedding) - 1.0) < 1e-9
    b64 = await collect(
        await sim.handle(
            post("/v1/embeddings", {"model": "e", "input": "a", "dimensions": 4, "encoding_format": "base64"})
        )
    )
    packed = base64.b64decode(msgspec.json.decode(b64)["data"][0]["embedding"])
    assert [round(v, 5) for v in struct.unpack("<4f", packed)] == [round(v, 5) for v in result.data[0].embedding]


async def test_faults_by_header_model_suffix_and_runtime() -> None:
    sim = Simulator()
    body = {"model": "m", "messages": MSG}
    assert (await sim.handle(post("/v1/chat/completions", body, {"x-sim-fault": "status=502"}))).status == 502
    limited = await sim.handle(post("/v1/chat/completions", {**body, "model": "m@status=429,retry_after=3"}))
    assert isinstance(limited, Response)
    assert limited.status == 429
    assert ("retry-after", "3") in limited.headers
    assert msgspec.json.decode(limited.body)["error"]["code"] == "rate_limit_exceeded"
    dated = await sim.handle(
        post("/v1/chat/completions", {**body, "model": "m@status=429,retry_after=3,retry_after_date"})
    )
    assert dict(dated.headers)["retry-after"].endswith("GMT")
    sim.set_fault("status=503")
    assert (await sim.handle(post("/v1/chat/completions", body))).status == 503
    sim.set_fault(None)
    ok = await sim.handle(post("/v1/chat/completions", {**body, "model": "m@latency=0"}))
    assert msgspec.json.decode(await collect(ok))["model"] == "m"  # the fault suffix is not echoed
    with pytest.raises(AbortConnection):
        await sim.handle(post("/v1/chat/completions", {**body, "model": "m@reset"}))
    assert len(sim.received) == 6


async def test_drop_after_and_malformed_streams() -> None:
    sim = Simulator()
    body = {"model": "m@drop_after=2", "messages": MSG, "stream": True}
    response = await sim.handle(post("/v1/chat/completions", body))
    assert isinstance(response, StreamingResponse)
    got: list[bytes] = []
    with pytest.raises(AbortConnection):  # noqa: PT012
        async for piece in response.body:
            got.append(piece)  # noqa: PERF401
    assert len(got) == 2
    broken = await collect(await sim.handle(post("/v1/chat/completions", {**body, "model": "m@malformed"})))
    assert b"data: {not json" in broken


async def test_auth_errors_and_azure_paths() -> None:
    sim = Simulator(api_keys=["good"])
    body = {"model": "m", "messages": MSG}
    denied = await sim.handle(post("/v1/chat/completions", body, {"authorization": "Bearer bad"}))
    assert denied.status == 401
    allowed = await sim.handle(post("/v1/chat/completions", body, {"authorization": "Bearer good"}))
    assert allowed.status == 200
    azure = await sim.handle(post("/openai/deployments/dep-1/chat/completions", {"messages": MSG}, {"api-key": "good"}))
    assert msgspec.json.decode(await collect(azure))["model"] == "dep-1"
    assert (await sim.handle(Request("POST", "/v1/chat/completions", "", {"api-key": "good"}, b"{bad"))).status == 400
    assert (await sim.handle(post("/v1/nothing", body, {"api-key": "good"}))).status == 404


@pytest.fixture
async def running() -> AsyncIterator[tuple[Simulator, int]]:
    sim = Simulator(name="wire")
    server = await start_simulator(sim)
    yield sim, server.port
    await server.close()


async def test_over_the_wire_with_control_endpoints(running: tuple[Simulator, int]) -> None:
    sim, port = running
    assert sim.name == "wire"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        assert (await http.post("/_sim/fault", json={"fault": "status=503"})).json() == {"fault": "status=503"}
        assert (await http.post("/v1/chat/completions", json={"model": "m", "messages": MSG})).status_code == 503
        await http.post("/_sim/fault", json={"fault": None})
        assert (await http.post("/v1/chat/completions", json={"model": "m", "messages": MSG})).status_code == 200
        assert len((await http.get("/_sim/received")).json()) == 2
        assert (await http.post("/_sim/fault", json={"fault": "bogus"})).status_code == 400
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/v1/chat/completions", json={"model": "m@reset", "messages": MSG})


def test_a_bare_number_is_a_status() -> None:
    assert parse_fault("503") == FaultSpec(status=503)
    assert parse_fault("429,retry_after=2") == FaultSpec(status=429, retry_after=2.0)
    with pytest.raises(ValueError, match="400-599"):
        parse_fault("200")


async def test_the_record_of_received_requests_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sidestep.sim.app.RECEIVED_LIMIT", 4)
    sim = Simulator()
    for n in range(10):
        await sim.handle(post("/v1/chat/completions", {"model": f"m{n}", "messages": MSG}))
    assert len(sim.received) <= 4
    assert sim.received[-1].body is not None and sim.received[-1].body["model"] == "m9"  # the newest is kept
