"""The simulator's native dialects: Anthropic Messages (checked with the official SDK) and Gemini generateContent
(checked by hand). The fault machinery across dialects is in test_faults.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import msgspec
import pytest
from anthropic.types import (
    Message,
    ThinkingBlock,
)

from sidestep.server.types import Request
from sidestep.sim import Simulator, start_simulator
from tests.sim_helpers import (
    ANTHROPIC,
    CONTENTS,
    GEMINI,
    HELLO,
    STREAM_EVENT,
    WEATHER,
    ask,
    claude,
    collect,
    decode,
    gemini,
    gemini_chunks,
    post,
    sim,
    sse,
    text,
    tool_use,
)

# -- Anthropic ----------------------------------------------------------------------------------------------


async def test_anthropic_message_has_the_real_shape_and_validates() -> None:
    response = await sim().handle(claude({}))
    raw = decode(response)
    assert list(raw) == ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"]
    assert raw["usage"] == {
        "input_tokens": raw["usage"]["input_tokens"],
        "output_tokens": raw["usage"]["output_tokens"],
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    message = Message.model_validate(raw)
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert message.content[0].type == "text"
    assert text(message).startswith("Echo from native: hello simulator.")
    assert ("request-id", "req_sim_native_1") in response.headers


async def test_anthropic_max_tokens_stop_sequences_and_system_blocks() -> None:
    simulator = sim()
    short = await ask(simulator, {"max_tokens": 3})
    assert (short.stop_reason, text(short)) == ("max_tokens", "Echo from native:")
    stopped = await ask(simulator, {"stop_sequences": ["simulator"]})
    assert stopped.stop_reason == "stop_sequence"
    assert stopped.stop_sequence == "simulator"
    assert text(stopped) == "Echo from native: hello "
    system = [{"type": "text", "text": "be brief and kind"}]
    long = await ask(simulator, {"system": system, "temperature": 0.2})
    assert long.usage.input_tokens == (await ask(simulator, {})).usage.input_tokens + 4


async def test_anthropic_tool_use_tool_choice_and_tool_result() -> None:
    simulator = sim()
    other = {"name": "other", "input_schema": {"type": "object", "properties": {"on": {"type": "boolean"}}}}
    used = await ask(simulator, {"tools": [WEATHER, other]})
    assert used.stop_reason == "tool_use"
    block = tool_use(used)
    assert (block.name, block.input) == ("weather", {"city": "example", "days": 1})
    assert block.id.startswith("toolu_")
    chosen = {"tools": [WEATHER, other], "tool_choice": {"type": "tool", "name": "other"}}
    picked = await ask(simulator, chosen)
    assert tool_use(picked).input == {"on": True}
    asked = await ask(
        simulator, {"tools": [WEATHER, other], "messages": [{"role": "user", "content": "tool_call=other"}]}
    )
    assert tool_use(asked).name == "other"
    none = await ask(simulator, {"tools": [WEATHER], "tool_choice": {"type": "none"}})
    assert none.stop_reason == "end_turn"
    result = {"type": "tool_result", "tool_use_id": block.id, "content": [{"type": "text", "text": "sunny"}]}
    turns = [
        *HELLO,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True)]},
        {"role": "user", "content": [result]},
    ]
    answer = await ask(simulator, {"tools": [WEATHER], "messages": turns})
    assert answer.stop_reason == "end_turn"
    assert text(answer).startswith("Echo from native: sunny.")


async def test_anthropic_thinking_comes_first_with_a_signature() -> None:
    body = {"max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    message = await ask(sim(), body)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert isinstance(message.content[0], ThinkingBlock)
    assert message.content[0].signature.startswith("EqQB")
    tooled = await ask(sim(), {**body, "tools": [WEATHER]})
    assert [b.type for b in tooled.content] == ["thinking", "tool_use"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "kind", "fragment"),
    [
        ({"max_tokens": None}, {}, 400, "invalid_request_error", "max_tokens: Field required"),
        ({"messages": None}, {}, 400, "invalid_request_error", "messages: Field required"),
        ({"model": ""}, {}, 400, "invalid_request_error", "model: Field required"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, {}, 400, "invalid_request_error", "budget_tokens"),
        ({}, {"anthropic-version": ""}, 400, "invalid_request_error", "anthropic-version: header is required"),
        ({}, {"x-api-key": "wrong"}, 401, "authentication_error", "invalid x-api-key"),
    ],
)
async def test_anthropic_request_errors(
    body: dict[str, Any], headers: dict[str, str], status: int, kind: str, fragment: str
) -> None:
    simulator = sim()
    response = await simulator.handle(claude(body, headers))
    assert response.status == status
    error = decode(response)
    assert error["type"] == "error"
    assert error["error"]["type"] == kind
    assert fragment in error["error"]["message"]
    assert simulator.received[-1].path == "/v1/messages"


async def test_anthropic_bad_json_and_count_tokens() -> None:
    simulator = sim()
    broken = await simulator.handle(Request("POST", "/v1/messages", "", ANTHROPIC, b"{nope"))
    assert broken.status == 400
    assert decode(broken)["error"]["type"] == "invalid_request_error"
    counted = await simulator.handle(post("/v1/messages/count_tokens", {"model": "c", "messages": HELLO}, ANTHROPIC))
    assert decode(counted) == {"input_tokens": 5}


async def test_anthropic_stream_is_the_exact_event_sequence() -> None:
    raw = await collect(await sim().handle(claude({"stream": True})))
    events = sse(raw)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    for name, data in events:
        assert data["type"] == name
        if name != "ping":  # the SDK drops pings before parsing; every other event is a RawMessageStreamEvent
            STREAM_EVENT.validate_python(data)
    start = events[0][1]["message"]
    assert (start["content"], start["stop_reason"], start["usage"]["output_tokens"]) == ([], None, 1)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text.startswith("Echo from native: hello simulator.")
    assert events[-2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2][1]["usage"]["output_tokens"] == len(text.split())


async def test_anthropic_stream_thinking_and_tool_deltas() -> None:
    body = {
        "stream": True,
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [WEATHER],
    }
    events = sse(await collect(await sim().handle(claude(body))))
    deltas = [(d["index"], d["delta"]["type"]) for n, d in events if n == "content_block_delta"]
    assert {kind for index, kind in deltas if index == 0} == {"thinking_delta", "signature_delta"}
    assert deltas[[i for i, _ in deltas].index(1) - 1] == (0, "signature_delta")  # the signature closes the thinking
    assert {kind for index, kind in deltas if index == 1} == {"input_json_delta"}
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert starts[0] == {"type": "thinking", "thinking": "", "signature": ""}
    assert (starts[1]["type"], starts[1]["input"]) == ("tool_use", {})
    partial = "".join(d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["index"] == 1)
    assert msgspec.json.decode(partial) == {"city": "example", "days": 1}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


async def test_anthropic_refusals() -> None:
    blocked = await ask(sim(), {}, {"x-sim-fault": "blocked"})
    assert (blocked.stop_reason, blocked.content) == ("refusal", [])
    half = await ask(sim(), {"model": "c@blocked_output"})
    assert half.stop_reason == "refusal"
    assert (
        text(half)
        == "Echo from native: hello simulator. Failover keeps answers flowing when a provider stumbles. Every"
    )
    events = sse(await collect(await sim().handle(claude({"stream": True}, {"x-sim-fault": "blocked"}))))
    assert [n for n, _ in events] == ["message_start", "ping", "message_delta", "message_stop"]


# -- Anthropic through the official SDK, over real HTTP -----------------------------------------------------


@pytest.fixture
async def served() -> AsyncIterator[tuple[Simulator, str]]:
    simulator = sim()
    server = await start_simulator(simulator)
    yield simulator, f"http://127.0.0.1:{server.port}"
    await server.close()


@pytest.fixture
async def client(served: tuple[Simulator, str]) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = anthropic.AsyncAnthropic(base_url=served[1], api_key="key", max_retries=0)
    yield sdk
    await sdk.close()


async def test_sdk_create_stream_and_count(client: anthropic.AsyncAnthropic, served: tuple[Simulator, str]) -> None:
    created = await client.messages.create(model="claude-sim", max_tokens=256, messages=HELLO)
    assert text(created).startswith("Echo from native")
    async with client.messages.stream(model="claude-sim", max_tokens=256, messages=HELLO) as stream:
        pieces = [piece async for piece in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == text(final)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == created.usage.output_tokens
    counted = await client.messages.count_tokens(model="claude-sim", messages=HELLO)
    assert counted.input_tokens == created.usage.input_tokens
    simulator, _ = served
    assert [r.path for r in simulator.received] == ["/v1/messages", "/v1/messages", "/v1/messages/count_tokens"]
    assert simulator.received[0].headers["anthropic-version"]


async def test_sdk_streams_tool_use_and_thinking(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(
        model="claude-sim",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[WEATHER],
        messages=HELLO,
    ) as stream:
        final = await stream.get_final_message()
    thinking, tool = final.content
    assert thinking.type == "thinking"
    assert thinking.signature.startswith("EqQB")
    assert tool.type == "tool_use"
    assert tool.input == {"city": "example", "days": 1}
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("status=529", anthropic.InternalServerError),
        ("status=429,retry_after=7", anthropic.RateLimitError),
        ("status=401", anthropic.AuthenticationError),
        ("status=404", anthropic.NotFoundError),
        ("status=400", anthropic.BadRequestError),
    ],
)
async def test_sdk_raises_the_right_exceptions(
    client: anthropic.AsyncAnthropic, fault: str, error: type[anthropic.APIStatusError]
) -> None:
    with pytest.raises(error) as info:
        await client.messages.create(model=f"claude-sim@{fault}", max_tokens=64, messages=HELLO)
    body = info.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    if info.value.status_code == 529:
        assert type(info.value).__name__ == "OverloadedError"
        assert body["error"]["type"] == "overloaded_error"
    if info.value.status_code == 429:
        assert info.value.response.headers["retry-after"] == "7"
        assert body["error"]["type"] == "rate_limit_error"


async def test_sdk_sees_in_stream_errors_drops_and_malformed_events(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        async with client.messages.stream(model="c@stream_error_after=4", max_tokens=64, messages=HELLO) as stream:
            await stream.get_final_message()
    assert info.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    # the cut surfaces from the SDK's own HTTP client (httpx or httpx2, by SDK version)
    with pytest.raises(Exception, match="incomplete chunked read"):
        async with client.messages.stream(model="c@drop_after=4", max_tokens=64, messages=HELLO) as stream:
            await stream.get_final_message()
    with pytest.raises(ValueError, match="Expecting property name"):
        async with client.messages.stream(model="c@malformed", max_tokens=64, messages=HELLO) as stream:
            await stream.get_final_message()


# -- Gemini -------------------------------------------------------------------------------------------------


def check_response(data: dict[str, Any], finish: str = "STOP") -> list[dict[str, Any]]:
    """Assert a GenerateContentResponse's shape by hand; return the candidate's parts."""
    assert set(data) == {"candidates", "usageMetadata", "modelVersion", "responseId"}
    (candidate,) = data["candidates"]
    assert candidate["content"]["role"] == "model"
    assert (candidate["finishReason"], candidate["index"]) == (finish, 0)
    usage = data["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage.get(
        "thoughtsTokenCount", 0
    )
    assert data["modelVersion"] == "gemini-sim"
    parts: list[dict[str, Any]] = candidate["content"]["parts"]
    return parts


async def test_gemini_generate_content_shape_and_limits() -> None:
    simulator = sim()
    parts = check_response(
        decode(await simulator.handle(gemini({"systemInstruction": {"parts": [{"text": "be kind"}]}})))
    )
    assert parts == [{"text": parts[0]["text"]}]
    assert parts[0]["text"].startswith("Echo from native: hello simulator.")
    short = decode(await simulator.handle(gemini({"generationConfig": {"maxOutputTokens": 3, "temperature": 0}})))
    assert check_response(short, "MAX_TOKENS") == [{"text": "Echo from native:"}]
    stopped = decode(await simulator.handle(gemini({"generationConfig": {"stopSequences": ["simulator"]}})))
    assert check_response(stopped) == [{"text": "Echo from native: hello "}]
    schema = {"type": "OBJECT", "properties": {"city": {"type": "STRING"}, "n": {"type": "INTEGER"}}}
    config = {"responseMimeType": "application/json", "responseSchema": schema}
    structured = check_response(decode(await simulator.handle(gemini({"generationConfig": config}))))
    assert msgspec.json.decode(structured[0]["text"]) == {"city": "example", "n": 1}
    thoughts = decode(
        await simulator.handle(gemini({"generationConfig": {"thinkingConfig": {"includeThoughts": True}}}))
    )
    assert check_response(thoughts)[0]["thought"] is True
    assert thoughts["usageMetadata"]["thoughtsTokenCount"] > 0


async def test_gemini_function_calls() -> None:
    simulator = sim()
    declaration = {"name": "weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}
    other = {"name": "other", "parametersJsonSchema": {"type": "object", "properties": {"on": {"type": "boolean"}}}}
    tools = [{"functionDeclarations": [declaration, other]}]
    called = check_response(decode(await simulator.handle(gemini({"tools": tools}))))
    assert called == [{"functionCall": {"name": "weather", "args": {"city": "example"}}}]
    only = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["other"]}}
    picked = check_response(decode(await simulator.handle(gemini({"tools": tools, "toolConfig": only}))))
    assert picked == [{"functionCall": {"name": "other", "args": {"on": True}}}]
    off = {"functionCallingConfig": {"mode": "NONE"}}
    assert "text" in check_response(decode(await simulator.handle(gemini({"tools": tools, "toolConfig": off}))))[0]
    turns = [
        *CONTENTS,
        {"role": "model", "parts": called},
        {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"sky": "clear"}}}]},
    ]
    answered = check_response(decode(await simulator.handle(gemini({"tools": tools, "contents": turns}))))
    assert answered[0]["text"].startswith('Echo from native: {"sky":"clear"}.')
    image = {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    mixed = [{"role": "user", "parts": [{"text": "what is this"}, image]}]
    assert check_response(decode(await simulator.handle(gemini({"contents": mixed}))))[0]["text"].startswith(
        "Echo from native: what is this."
    )


async def test_gemini_safety_blocks() -> None:
    simulator = sim()
    simulator.set_fault("blocked")
    blocked = decode(await simulator.handle(gemini({})))
    assert "candidates" not in blocked
    assert blocked["promptFeedback"]["blockReason"] == "SAFETY"
    assert "candidatesTokenCount" not in blocked["usageMetadata"]
    stream = gemini_chunks(await collect(await simulator.handle(gemini({}, stream=True))))
    assert [chunk["promptFeedback"]["blockReason"] for chunk in stream] == ["SAFETY"]
    simulator.set_fault("blocked_output")
    (candidate,) = decode(await simulator.handle(gemini({})))["candidates"]
    assert candidate["finishReason"] == "SAFETY"
    assert "content" not in candidate  # a blocked candidate comes back without content
    assert any(rating.get("blocked") for rating in candidate["safetyRatings"])
    chunks = gemini_chunks(await collect(await simulator.handle(gemini({}, stream=True))))
    assert chunks[-1]["candidates"][0]["finishReason"] == "SAFETY"
    assert all("finishReason" not in chunk["candidates"][0] for chunk in chunks[:-1])
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks[:-1]).startswith("Echo from")


async def test_gemini_sse_stream_and_json_array_stream() -> None:
    simulator = sim()
    whole = decode(await simulator.handle(gemini({})))["candidates"][0]["content"]["parts"][0]["text"]
    chunks = gemini_chunks(await collect(await simulator.handle(gemini({}, stream=True))))
    assert len(chunks) > 1
    texts = [chunk["candidates"][0]["content"]["parts"][0]["text"] for chunk in chunks]
    assert "".join(texts) == whole
    assert all("finishReason" not in chunk["candidates"][0] for chunk in chunks[:-1])
    check_response(chunks[-1])
    counts = [chunk["usageMetadata"]["candidatesTokenCount"] for chunk in chunks]
    assert counts == sorted(counts)  # running totals: the last one is the answer's
    assert counts[-1] == decode(await simulator.handle(gemini({})))["usageMetadata"]["candidatesTokenCount"]
    response = await simulator.handle(gemini({}, stream=True, query="key=key"))
    assert dict(response.headers)["content-type"] == "application/json"
    array = msgspec.json.decode(await collect(response))
    assert "".join(item["candidates"][0]["content"]["parts"][0]["text"] for item in array) == whole
    tools = [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT", "properties": {}}}]}]
    (call,) = gemini_chunks(await collect(await simulator.handle(gemini({"tools": tools}, stream=True))))
    assert check_response(call) == [{"functionCall": {"name": "f", "args": {}}}]


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
    ],
)
async def test_gemini_error_statuses(status: int, name: str) -> None:
    response = await sim().handle(gemini({}, f"gemini-sim@status={status}"))
    assert response.status == status
    error = decode(response)["error"]
    assert (error["code"], error["status"]) == (status, name)
    assert error["message"]


async def test_gemini_auth_validation_and_routes() -> None:
    simulator = sim()
    path = "/v1beta/models/gemini-sim:generateContent"
    body = {"contents": CONTENTS}
    assert (await simulator.handle(post(path, body, {}, "key=key"))).status == 200
    missing = await simulator.handle(post(path, body, {}))
    assert (missing.status, decode(missing)["error"]["status"]) == (403, "PERMISSION_DENIED")
    wrong = await simulator.handle(post(path, body, {"x-goog-api-key": "nope"}))
    assert wrong.status == 400
    assert decode(wrong)["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    empty = await simulator.handle(post(path, {"contents": []}, GEMINI))
    assert (empty.status, decode(empty)["error"]["status"]) == (400, "INVALID_ARGUMENT")
    role = await simulator.handle(post(path, {"contents": [{"role": "bot", "parts": []}]}, GEMINI))
    assert "valid role" in decode(role)["error"]["message"]
    broken = await simulator.handle(Request("POST", path, "", GEMINI, b"{"))
    assert decode(broken)["error"]["message"].startswith("Invalid JSON payload")
    unknown = await simulator.handle(post("/v1beta/models/gemini-sim:predict", body, GEMINI))
    assert (unknown.status, decode(unknown)["error"]["status"]) == (404, "NOT_FOUND")
    counted = await simulator.handle(post("/v1beta/models/gemini-sim:countTokens", body, GEMINI))
    assert decode(counted) == {"totalTokens": 5}
    assert simulator.received[0].query == "key=key"


async def test_gemini_over_the_wire_with_a_fault_in_the_path(served: tuple[Simulator, str]) -> None:
    simulator, base = served
    async with httpx.AsyncClient(base_url=base, headers=GEMINI) as http:
        url = "/v1beta/models/gemini-sim@status=429,retry_after=2:generateContent"
        limited = await http.post(url, json={"contents": CONTENTS})
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "2"
        assert limited.json()["error"]["details"] == [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}
        ]
        url = "/v1beta/models/gemini-sim%40chunks%3D3:streamGenerateContent"
        async with http.stream("POST", url, params={"alt": "sse"}, json={"contents": CONTENTS}) as response:
            assert response.headers["content-type"] == "text/event-stream"
            lines = [line async for line in response.aiter_lines() if line]
    assert len(lines) == 3
    assert msgspec.json.decode(lines[-1][6:])["candidates"][0]["finishReason"] == "STOP"
    assert simulator.received[-1].query == "alt=sse"
