"""The Bedrock Converse format as a client format: requests read into the canonical model, answers and
ConverseStream frames written back (decoded by botocore's own parser, which checks every length and CRC),
Converse's rules checked before routing, and errors named the way botocore reads them."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from botocore.eventstream import EventStreamBuffer

from sidestep.core.model import ChatResponse, Event, TextPart, ThinkingPart, ToolCall, ToolResultPart, Usage
from sidestep.errors import BadRequest, NotFound, UpstreamError
from sidestep.formats.base import ClientFormat, FramedStreams, NamesErrors, RefusesPaths, stream_media_type
from sidestep.formats.bedrock_converse import BEDROCK_CONVERSE, StreamReader
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.sim import bedrock as simwire

USER = {"role": "user", "content": [{"text": "hi"}]}


def frames(raw: bytes) -> list[tuple[dict[str, Any], Any]]:
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return [(message.headers, msgspec.json.decode(message.payload)) for message in buffer]


def test_it_is_a_client_format_with_framed_streams_and_named_errors() -> None:
    assert isinstance(BEDROCK_CONVERSE, ClientFormat)
    assert isinstance(BEDROCK_CONVERSE, FramedStreams) and isinstance(BEDROCK_CONVERSE, NamesErrors)
    assert isinstance(BEDROCK_CONVERSE, RefusesPaths)
    assert stream_media_type(BEDROCK_CONVERSE) == "application/vnd.amazon.eventstream"
    assert stream_media_type(OPENAI_CHAT) is None and not isinstance(OPENAI_CHAT, NamesErrors)


def test_a_converse_request_reads_into_the_canonical_model() -> None:
    body = {
        "stream": True,  # the gateway's mark for /converse-stream
        "system": [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}],
        "messages": [
            {"role": "user", "content": [{"text": "look"}, {"image": {"format": "jpeg", "source": {"bytes": "QUJD"}}}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}}]},
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"json": {"ok": True}}], "status": "error"}}
                ],
            },
        ],
        "inferenceConfig": {"maxTokens": 7, "temperature": 0.5, "topP": 0.9, "stopSequences": ["##"]},
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "f", "description": "d", "inputSchema": {"json": {"type": "object"}}}}],
            "toolChoice": {"any": {}},
        },
        "additionalModelRequestFields": {"top_k": 3, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        "requestMetadata": {"team": "ops"},
    }
    request = BEDROCK_CONVERSE.read_request(body)
    assert request.stream and request.include_usage
    assert [p.text for p in request.system] == ["Be brief."]
    assert (request.max_tokens, request.temperature, request.top_p, request.stop) == (7, 0.5, 0.9, ["##"])
    assert request.top_k == 3 and request.thinking_budget == 1024
    assert request.tools[0].name == "f" and request.tools[0].parameters == {"type": "object"}
    assert request.tool_choice is not None and request.tool_choice.mode == "required"
    image = request.messages[0].parts[1]
    assert image.media_type == "image/jpeg" and image.data == "QUJD"  # type: ignore[union-attr]
    assert request.messages[1].tool_calls == [ToolCall(id="t1", name="f", arguments='{"a":1}')]
    result = request.messages[2].parts[0]
    assert isinstance(result, ToolResultPart) and result.is_error and result.content == [TextPart(text='{"ok":true}')]
    assert request.extras == {"requestMetadata": {"team": "ops"}}


def test_an_answer_is_written_in_converse_shape() -> None:
    answer = ChatResponse(
        id="x",
        model="m",
        parts=[ThinkingPart(text="hmm", signature="sig"), TextPart(text="done")],
        tool_calls=[ToolCall(id="t1", name="f", arguments='{"a": 1}')],
        finish="tool_calls",
        usage=Usage(input=5, output=3, cached=2),
    )
    data = msgspec.json.decode(BEDROCK_CONVERSE.write_response(answer))
    assert data["output"]["message"]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig"}}},
        {"text": "done"},
        {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}},
    ]
    assert data["stopReason"] == "tool_use"
    assert data["usage"] == {"inputTokens": 5, "outputTokens": 3, "totalTokens": 8, "cacheReadInputTokens": 2}
    stopped = ChatResponse(id="x", model="m", parts=[TextPart(text="a")], stop_sequence="##")
    assert msgspec.json.decode(BEDROCK_CONVERSE.write_response(stopped))["stopReason"] == "stop_sequence"


def test_the_stream_writer_writes_frames_botocore_reads_and_our_reader_reads_back() -> None:
    writer = BEDROCK_CONVERSE.stream_writer("m", True)
    events = [
        Event(kind="start", id="s"),
        Event(kind="thinking", text="let me see"),
        Event(kind="text", text="Hel"),
        Event(kind="text", text="lo"),
        Event(kind="tool_start", index=0, id="t1", name="f"),
        Event(kind="tool_args", index=0, text='{"a"'),
        Event(kind="tool_args", index=0, text=":1}"),
        Event(kind="finish", finish="tool_calls"),
        Event(kind="usage", usage=Usage(input=4, output=6)),
        Event(kind="end"),
    ]
    raw = b"".join(writer.write(event) for event in events)
    decoded = frames(raw)
    names = [headers[":event-type"] for headers, _ in decoded]
    assert names == [
        "messageStart",
        "contentBlockDelta",  # reasoning, block 0
        "contentBlockStop",
        "contentBlockDelta",  # text, block 1
        "contentBlockDelta",
        "contentBlockStop",
        "contentBlockStart",  # the tool call, block 2
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert [payload.get("contentBlockIndex") for _, payload in decoded[1:10]] == [0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert decoded[-2][1] == {"stopReason": "tool_use"}
    assert decoded[-1][1]["usage"] == {"inputTokens": 4, "outputTokens": 6, "totalTokens": 10}
    reader = StreamReader()
    back = [e for i in range(0, len(raw), 7) for e in reader.feed(raw[i : i + 7])]  # split anywhere
    kinds = [e.kind for e in back]
    assert kinds[0] == "start" and kinds[-2:] == ["usage", "end"]
    assert "".join(e.text for e in back if e.kind == "text") == "Hello"
    assert "".join(e.text for e in back if e.kind == "tool_args") == '{"a":1}'


def test_in_stream_errors_are_exception_frames_and_the_simulator_shares_the_encoder() -> None:
    writer = BEDROCK_CONVERSE.stream_writer("m", True)
    assert writer.write(Event(kind="text", text="x"))  # a message was started
    for code, kind in [
        ("stream_interrupted", "modelStreamErrorException"),
        ("all_targets_failed", "serviceUnavailableException"),
        ("upstream_rejected", "validationException"),
    ]:
        ((headers, payload),) = frames(BEDROCK_CONVERSE.stream_error("it broke", code))
        assert headers[":message-type"] == "exception" and headers[":exception-type"] == kind
        assert payload == {"message": "it broke"}
    assert simwire.stream_error("x") == BEDROCK_CONVERSE.stream_error("x")
    assert simwire.frame is not None and simwire.frame.__module__.endswith("bedrock_converse.eventstream")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{}", "messages"),
        (b'{"messages": []}', "messages"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "messages.0.content"),
        (b'{"messages": [{"role": "tool", "content": [{"text": "x"}]}]}', "messages.0.role"),
        (b'{"messages": [{"role": "user", "content": [{"toolUse": "x"}]}]}', "toolUse"),
        (b'{"messages": [{"role": "user", "content": [{"text": "x"}]}], "system": "be brief"}', "system"),
        (
            b'{"messages": [{"role": "user", "content": [{"text": "x"}]}], "inferenceConfig": {"maxTokens": 0}}',
            "maxTokens",
        ),
        (
            b'{"messages": [{"role": "user", "content": [{"text": "x"}]}], "inferenceConfig": {"temperature": true}}',
            "temperature",
        ),
        (
            b'{"messages": [{"role": "user", "content": [{"text": "x"}]}], "inferenceConfig": {"stopSequences": [1]}}',
            "stopSequences",
        ),
        (b'{"messages": [{"role": "user", "content": [{"text": "x"}]}], "toolConfig": {"tools": []}}', "toolConfig"),
        (
            b'{"messages": [{"role": "user", "content": [{"text": "x"}]}], '
            b'"toolConfig": {"tools": [{"toolSpec": {"name": "f"}}], "toolChoice": 1}}',
            "toolSpec",
        ),
        (
            b'{"messages": [{"role": "user", "content": [{"text": "x"}]}], "additionalModelRequestFields": []}',
            "additionalModelRequestFields",
        ),
    ],
)
def test_converse_rules_are_checked_before_routing(body: bytes, says: str) -> None:
    with pytest.raises(BadRequest) as refused:
        BEDROCK_CONVERSE.parse_body(body, "converse")
    assert says in refused.value.message


def test_converse_bodies_are_checked_whatever_the_operation() -> None:
    with pytest.raises(BadRequest, match="messages"):
        BEDROCK_CONVERSE.parse_body(b'{"prompt": "hi", "max_gen_len": 5}', "converse")


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "ValidationException"),
        (401, "AccessDeniedException"),
        (404, "ResourceNotFoundException"),
        (413, "ValidationException"),
        (429, "ThrottlingException"),
        (502, "ServiceUnavailableException"),
        (504, "ModelTimeoutException"),
        (599, "InternalServerException"),
    ],
)
def test_errors_name_the_exception_botocore_raises(status: int, kind: str) -> None:
    ((name, value),) = BEDROCK_CONVERSE.error_headers(status)
    assert name == "x-amzn-errortype" and value.split(":")[0] == kind


def test_error_bodies_are_bedrocks_and_upstream_bedrock_errors_pass_through() -> None:
    assert msgspec.json.decode(BEDROCK_CONVERSE.error_body(NotFound("no such"))) == {"message": "no such"}
    native = UpstreamError("aws: bad", status=400, body=b'{"message":"Malformed input request"}')
    assert BEDROCK_CONVERSE.upstream_error_body(native) == native.body
    openai = UpstreamError("oai: bad", status=400, body=b'{"error": {"message": "bad", "type": "x"}}')
    assert msgspec.json.decode(BEDROCK_CONVERSE.upstream_error_body(openai)) == {"message": "oai: bad"}
    assert msgspec.json.decode(BEDROCK_CONVERSE.server_error_body(413, "too big")) == {"message": "too big"}


def test_paths_not_served_are_refused_by_name() -> None:
    unknown = BEDROCK_CONVERSE.refuse_path("/model/m/" + "x" * 500, "POST")
    assert unknown is not None and unknown.status == 404 and len(unknown.message) < 200
    assert "invoke-with-response-stream" in unknown.message  # served: named among the operations
