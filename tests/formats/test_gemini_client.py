"""The Gemini format as a client format, unit by unit: a google-genai request read into the canonical model
(call ids, schemas, config), answers and streams written back, errors, the end-of-stream rule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sidestep.core.model import ChatResponse, Event, TextPart, ThinkingPart, ToolCall, ToolResultPart, Usage
from sidestep.errors import BadRequest, UpstreamError
from sidestep.formats.gemini import GEMINI
from sidestep.formats.gemini.client import json_schema, read_request
from sidestep.formats.translate import translate_request


def test_calls_without_ids_are_named_and_results_find_them() -> None:
    body: dict[str, Any] = {
        "contents": [
            {"role": "user", "parts": [{"text": "weather in two cities"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "weather", "args": {"city": "Rome"}}},
                    {"thoughtSignature": "opaque"},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "weather", "response": {"result": "sunny"}}},
                    {"functionResponse": {"name": "weather", "response": {"error": "no data"}}},
                ],
            },
        ]
    }
    request = read_request(body)
    calls = request.messages[1].tool_calls
    assert [(c.id, c.arguments) for c in calls] == [("call_0", '{"city":"Paris"}'), ("call_1", '{"city":"Rome"}')]
    results = request.messages[2].parts
    assert all(isinstance(r, ToolResultPart) for r in results)
    first, second = results
    assert isinstance(first, ToolResultPart) and isinstance(second, ToolResultPart)
    assert (first.tool_call_id, first.content[0].text, first.is_error) == ("call_0", "sunny", False)  # type: ignore[union-attr]
    assert (second.tool_call_id, second.is_error) == ("call_1", True)
    again = translate_request(body, GEMINI, GEMINI)  # and back to Gemini: the calls and results pair again
    assert [p["functionResponse"]["name"] for p in again["contents"][2]["parts"]] == ["weather", "weather"]


def test_config_and_schemas_read_as_the_canonical_model_has_them() -> None:
    body = {
        "contents": [{"parts": [{"text": "hi"}]}],
        "system_instruction": {"parts": [{"text": "Be brief."}]},  # REST takes snake_case too
        "generationConfig": {
            "maxOutputTokens": 64,
            "temperature": 0,
            "topK": 3,
            "stopSequences": ["END"],
            "responseMimeType": "application/json",
            "responseSchema": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER", "nullable": True}}},
            "thinkingConfig": {"thinkingBudget": 1024},
        },
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}],
        "safetySettings": [],
    }
    request = read_request(body)
    assert request.system == [TextPart(text="Be brief.")]
    assert (request.max_tokens, request.temperature, request.top_k, request.stop) == (64, 0.0, 3, ["END"])
    assert request.json_mode == "schema" and request.json_schema is not None
    assert request.json_schema["schema"] == {"type": "object", "properties": {"n": {"type": ["integer", "null"]}}}
    assert request.thinking_budget == 1024
    assert request.tool_choice is not None and (request.tool_choice.mode, request.tool_choice.name) == ("tool", "f")
    assert request.tools[0].parameters == {"type": "object"}
    assert request.extras == {"safetySettings": []}
    assert json_schema({"type": "STRING", "propertyOrdering": ["a"], "enum": ["x"]}) == {
        "type": "string",
        "enum": ["x"],
    }


@pytest.mark.parametrize(
    "part",
    [
        {"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}},
        {"executableCode": {"code": "print(1)"}},
        {},
    ],
)
def test_parts_only_gemini_takes_are_refused_when_translated(part: dict[str, Any]) -> None:
    with pytest.raises(BadRequest, match="only be sent to Gemini targets"):
        read_request({"contents": [{"parts": [part]}]})


def test_answers_are_generate_content_responses() -> None:
    answer = ChatResponse(
        id="r1",
        model="claude",
        parts=[ThinkingPart(text="hmm"), TextPart(text="hello")],
        tool_calls=[ToolCall(id="toolu_1", name="f", arguments='{"a":1}')],
        finish="tool_calls",
        usage=Usage(input=5, output=9, reasoning=2, cached=1),
    )
    data = json.loads(GEMINI.write_response(answer))
    candidate = data["candidates"][0]
    assert candidate["content"]["parts"] == [
        {"text": "hmm", "thought": True},
        {"text": "hello"},
        {"functionCall": {"id": "toolu_1", "name": "f", "args": {"a": 1}}},
    ]
    assert candidate["finishReason"] == "STOP" and data["responseId"] == "r1" and data["modelVersion"] == "claude"
    assert data["usageMetadata"] == {
        "promptTokenCount": 5,
        "candidatesTokenCount": 7,
        "totalTokenCount": 14,
        "thoughtsTokenCount": 2,
        "cachedContentTokenCount": 1,
    }


def test_stream_writer_sends_calls_whole_and_finishes_with_usage() -> None:
    writer = GEMINI.stream_writer("m", True)
    events = [
        Event(kind="start", id="s1", model="m"),
        Event(kind="text", text="Hi"),
        Event(kind="tool_start", index=0, id="c1", name="f"),
        Event(kind="tool_args", index=0, text='{"a"'),
        Event(kind="tool_args", index=0, text=":1}"),
        Event(kind="finish", finish="tool_calls"),
        Event(kind="usage", usage=Usage(input=3, output=4)),
        Event(kind="end"),
    ]
    out = b"".join(writer.write(e) for e in events)
    chunks = [json.loads(line[6:]) for line in out.split(b"\r\n\r\n") if line]
    assert [c["candidates"][0].get("content", {}).get("parts") for c in chunks] == [
        [{"text": "Hi"}],
        [{"functionCall": {"id": "c1", "name": "f", "args": {"a": 1}}}],
    ]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] == 7
    assert GEMINI.stream_complete(out[-24:]) and not GEMINI.stream_complete(out[-30:-6])
    reread = [e.kind for e in GEMINI.stream_reader().feed(out)]
    assert reread == ["start", "text", "tool_start", "tool_args", "finish", "usage", "end"]


def test_errors_take_googles_shape() -> None:
    refused = json.loads(GEMINI.error_body(BadRequest("no")))
    assert refused == {"error": {"code": 400, "message": "no", "status": "INVALID_ARGUMENT"}}
    google = b'{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}'
    assert GEMINI.upstream_error_body(UpstreamError("x", status=429, body=google)) == google
    openai = b'{"error": {"message": "bad", "type": "invalid_request_error", "code": null}}'
    rewrapped = json.loads(GEMINI.upstream_error_body(UpstreamError("upstream said bad", status=400, body=openai)))
    assert rewrapped["error"] == {"code": 400, "message": "upstream said bad", "status": "INVALID_ARGUMENT"}
    event = GEMINI.stream_error("cut", code="all_targets_failed")
    assert event.startswith(b'data: {"error":') and b'"UNAVAILABLE"' in event  # google-genai raises on it
    assert GEMINI.comment("keep-alive") == b"\r\n"
