"""The OpenAI chat format: request parsing errors, error shapes, SSE framing."""

from __future__ import annotations

import msgspec
import pytest

from sidestep.errors import BadRequest, UpstreamError
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.openai_chat.stream import StreamReader
from sidestep.formats.openai_chat.wire import Envelope
from sidestep.formats.sse import SSESplitter, data_of

parse_body = OPENAI_CHAT.parse_body
upstream_error_body = OPENAI_CHAT.upstream_error_body
stream_error_event = OPENAI_CHAT.stream_error


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "empty"),
        (b"{nope", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "'model' is required"),
        (b'{"model": "m", "messages": []}', "'messages' is required"),
        (b'{"model": "m", "messages": [{}], "stream": "yes"}', "'stream' must be a boolean"),
        (b'{"model": "m", "messages": [{}], "fallbacks": "x"}', "'fallbacks' must be an array"),
    ],
)
def test_bad_requests_are_rejected_with_a_precise_message(raw: bytes, fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        parse_body(raw, "chat")


def test_models_and_fallbacks_extend_the_model_list() -> None:
    parsed = parse_body(b'{"model": "a", "models": ["b"], "fallbacks": ["c"], "messages": [{}]}', "chat")
    assert parsed.models == ["a", "b", "c"]
    parsed = parse_body(b'{"models": ["b", "c"], "messages": [{}], "stream": true}', "chat")
    assert parsed.models == ["b", "c"]
    assert parsed.stream


def test_embeddings_need_input() -> None:
    with pytest.raises(BadRequest, match="'input'"):
        parse_body(b'{"model": "e"}', "embeddings")


def test_sse_splitter_handles_split_events_and_crlf() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b'data: {"a"') == []
    assert splitter.feed(b": 1}\n\ndata: [DO") == [b'{"a": 1}']
    assert splitter.feed(b"NE]\r\n\r\n: comment\n\n") == [b"[DONE]"]


def test_data_of_joins_multi_line_data_and_ignores_other_fields() -> None:
    assert data_of(b'data: {"a": 1}') == b'{"a": 1}'  # the usual single line
    assert data_of(b"data:x\ndata: y") == b"x\ny"
    assert data_of(b"event: ping\ndata: {}") == b"{}"
    assert data_of(b"data: a\n: comment") == b"a"
    assert data_of(b": keep-alive") is None


def test_stream_reader_reads_chunk_fields_and_ignores_odd_values_as_before() -> None:
    reader = StreamReader()
    stream = (
        b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}\n\n'
        b"data: 42\n\n"  # JSON, not an object: skipped
        b'data: {"choices":[{"delta":{"content":["not","text"]}},{"delta":{"content":"Hi"},"logprobs":null}]}\n\n'
        b'data: {"choices":[{"delta":{"reasoning":"hmm","tool_calls":[{"index":1,"id":"t","function":{"name":"f",'
        b'"arguments":"{}"}}]},"finish_reason":"function_call"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
        b'data: {"error":"overloaded"}\n\ndata: [DONE]\n\n'
    )
    events = reader.feed(stream)
    assert [(e.kind, e.text or e.id or e.finish) for e in events] == [
        ("start", "c1"),
        ("text", "Hi"),
        ("thinking", "hmm"),
        ("tool_start", "t"),
        ("tool_args", "{}"),
        ("finish", "tool_calls"),
        ("usage", None),
        ("error", "overloaded"),
        ("end", None),
    ]
    assert events[6].usage is not None and (events[6].usage.input, events[6].usage.output) == (3, 2)
    with pytest.raises(msgspec.DecodeError):  # an object with an impossible shape is malformed, not skipped
        StreamReader().feed(b'data: {"choices": 3}\n\n')


def test_upstream_error_body_is_passed_through_or_wrapped() -> None:
    native = b'{"error": {"message": "bad temperature", "type": "invalid_request_error", "param": "t", "code": null}}'
    assert upstream_error_body(UpstreamError("x", status=400, body=native)) == native
    wrapped = upstream_error_body(UpstreamError("upstream said no", status=422, body=b"<html>"))
    assert msgspec.json.decode(wrapped)["error"]["message"] == "upstream said no"


def test_stream_error_event_is_an_sse_error_object() -> None:
    event = stream_error_event("boom")
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    assert msgspec.json.decode(event[6:])["error"]["message"] == "boom"


def test_an_answers_usage_reads_under_the_names_every_adapter_uses() -> None:
    body = b'{"choices": [{}], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}'
    usage = msgspec.json.decode(body, type=Envelope).usage
    assert usage is not None and (usage.input, usage.output) == (3, 5)
    assert msgspec.json.decode(b'{"choices": [{}], "usage": {}}', type=Envelope).usage == type(usage)()  # zeros
