"""The OpenAI dialect: request parsing errors, error shapes, SSE framing."""

from __future__ import annotations

import msgspec
import pytest

from sidestep.dialects.openai import has_content, parse_body, stream_error_event, upstream_error_response
from sidestep.dialects.sse import SSESplitter
from sidestep.errors import BadRequest, UpstreamError


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


def test_has_content_waits_for_visible_output() -> None:
    assert not has_content({"choices": [{"delta": {"role": "assistant", "content": ""}}]})
    assert has_content({"choices": [{"delta": {"content": "Hi"}}]})
    assert has_content({"choices": [{"delta": {"tool_calls": [{"index": 0}]}}]})
    assert has_content({"choices": [{"delta": {}, "finish_reason": "stop"}]})


def test_sse_splitter_handles_split_events_and_crlf() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b'data: {"a"') == []
    assert splitter.feed(b": 1}\n\ndata: [DO") == [b'{"a": 1}']
    assert splitter.feed(b"NE]\r\n\r\n: comment\n\n") == [b"[DONE]"]


def test_upstream_error_body_is_passed_through_or_wrapped() -> None:
    native = b'{"error": {"message": "bad temperature", "type": "invalid_request_error", "param": "t", "code": null}}'
    response = upstream_error_response(UpstreamError("x", status=400, body=native), [])
    assert response.status == 400
    assert response.body == native
    wrapped = upstream_error_response(UpstreamError("upstream said no", status=422, body=b"<html>"), [])
    assert msgspec.json.decode(wrapped.body)["error"]["message"] == "upstream said no"


def test_stream_error_event_is_an_sse_error_object() -> None:
    event = stream_error_event("boom")
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    assert msgspec.json.decode(event[6:])["error"]["message"] == "boom"
