"""`formats.gemini.array` alone: the query string's pick (`stream_format`), the array writer's framing and the
re-framing of a Gemini target's SSE stream, fed in any split."""

from __future__ import annotations

import json

import pytest

from sidestep.core.model import Event, Usage
from sidestep.errors import BadRequest
from sidestep.formats.gemini import GEMINI, GEMINI_ARRAY, stream_format
from sidestep.formats.gemini.array import ArrayWriter, Reframed

OPEN = GEMINI_ARRAY.stream_opening


@pytest.mark.parametrize(
    ("query", "picked"),
    [
        ("", GEMINI_ARRAY),
        ("alt=json", GEMINI_ARRAY),
        ("alt=sse", GEMINI),
        ("%24alt=json%3Benum-encoding%3Dint", GEMINI_ARRAY),
        ("$alt=sse", GEMINI),
        ("key=abc&alt=sse", GEMINI),
        ("key=a%3Dlt%3Dsse", GEMINI_ARRAY),  # `alt=sse` inside another field's value is not `alt`
        ("altx=sse&xalt=sse", GEMINI_ARRAY),
        ("&&=&alt=json&", GEMINI_ARRAY),
        ("alt=sse;foo", GEMINI),
    ],
)
def test_the_query_picks_the_stream(query: str, picked: object) -> None:
    assert stream_format(query) is picked


@pytest.mark.parametrize(
    "query", ["alt=", "alt", "alt=SSE", "alt=proto", "alt=sse&alt=sse", "alt=json&$alt=json", "alt=%ff", "alt=+sse"]
)
def test_anything_else_is_refused(query: str) -> None:
    with pytest.raises(BadRequest) as refused:
        stream_format(query)
    assert refused.value.status == 400 and "alt" in refused.value.message


def test_a_long_value_is_cut_in_the_message() -> None:
    with pytest.raises(BadRequest) as refused:
        stream_format("alt=" + "y" * 100_000)
    assert len(refused.value.message) < 200 and "y" * 40 + "…" in refused.value.message


def _answer(writer: ArrayWriter) -> bytes:
    out = writer.write(Event(kind="start", id="r1", model="m"))
    for word in ("Hello", " there"):
        out += writer.write(Event(kind="text", text=word))
    out += writer.write(Event(kind="finish", finish="stop"))
    out += writer.write(Event(kind="usage", usage=Usage(input=3, output=2)))
    return out + writer.write(Event(kind="end"))


def test_the_writer_frames_elements_and_closes_once() -> None:
    writer = ArrayWriter("m")
    body = OPEN + _answer(writer)
    elements = json.loads(body)
    assert [e["candidates"][0].get("finishReason") for e in elements] == [None, None, "STOP"]
    assert b"},\r\n{" in body and body.endswith(b"}]")
    assert writer.error("too late") == b"" and writer.write(Event(kind="text", text="more")) == b""


def test_an_error_closes_the_array_wherever_it_comes() -> None:
    empty = ArrayWriter("m")
    assert json.loads(OPEN + empty.error("no target")) == [
        {"error": {"code": 503, "message": "no target", "status": "UNAVAILABLE"}}
    ]
    begun = ArrayWriter("m")
    body = OPEN + begun.write(Event(kind="text", text="Hi")) + begun.error("cut", code="upstream_rejected")
    assert json.loads(body)[-1]["error"]["code"] == 400
    event = ArrayWriter("m")
    body = OPEN + event.write(Event(kind="error", text="overloaded")) + event.error("then cut")
    assert [e["error"]["message"] for e in json.loads(body)] == ["overloaded"]  # the first error is the last word
    assert json.loads(OPEN + GEMINI_ARRAY.stream_error("none answered")) == [
        {"error": {"code": 503, "message": "none answered", "status": "UNAVAILABLE"}}
    ]


_SSE = (
    b'data: {"candidates":[{"content":{"parts":[{"text":"He"}],"role":"model"},"index":0,'
    b'"safetyRatings":[{"category":"X","probability":"NEGLIGIBLE"}]}],"responseId":"a"}\r\n\r\n'
    b'data: {"candidates":[{"content":{"parts":[{"text":"llo","thoughtSignature":"c2ln"}],"role":"model"},'
    b'"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2,'
    b'"totalTokenCount":6},"responseId":"a"}\r\n\r\n'
)


@pytest.mark.parametrize("size", [1, 7, len(_SSE)])
def test_a_gemini_stream_is_reframed_event_for_element_in_any_split(size: int) -> None:
    reframed = Reframed(ArrayWriter("m"))
    body = OPEN + b"".join(reframed.feed(_SSE[i : i + size]) for i in range(0, len(_SSE), size))
    events = [json.loads(line[6:]) for line in _SSE.split(b"\r\n\r\n") if line]
    assert json.loads(body) == events  # every field as it came: safety ratings, thought signatures
    assert reframed.ended and reframed.usage == Usage(input=4, output=2) and reframed.relayed_chars() == 5
    assert reframed.feed(_SSE) == b""  # nothing after the end


def test_a_gemini_stream_cut_short_is_not_ended() -> None:
    writer = ArrayWriter("m")
    reframed = Reframed(writer)
    body = OPEN + reframed.feed(_SSE[: _SSE.index(b"\r\n\r\n") + 4]) + writer.error("cut")
    assert not reframed.ended and json.loads(body)[-1]["error"]["message"] == "cut"
