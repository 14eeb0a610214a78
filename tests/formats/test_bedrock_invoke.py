"""`BEDROCK_INVOKE`: InvokeModel's bodies passed through, and `InvokeFrames`, which cuts an
InvokeModelWithResponseStream into whole frames and reads them (usage, end, exceptions) — fed the simulator's
frames (written by the one encoder the gateway shares) split at every byte, and broken ones."""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec
import pytest
from botocore.eventstream import EventStreamBuffer

from sidestep.core.model import Usage
from sidestep.errors import BadRequest
from sidestep.formats.base import ClientFormat, Converses, frame_reader, stream_media_type
from sidestep.formats.bedrock_converse import BEDROCK_CONVERSE, BEDROCK_INVOKE, InvokeFrames
from sidestep.formats.bedrock_converse.eventstream import event_frame, exception_frame
from sidestep.sim import anthropic as claude
from sidestep.sim import bedrock as simwire

_encode = msgspec.json.Encoder().encode


def claude_stream(text: str = "hello there friend") -> bytes:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": text}],
    }
    reply = claude.plan_reply(body, "aws")
    frames, _ = simwire.invoke_stream_events(*claude.stream_payloads("m", reply, "msg_1", 4))
    return b"".join(frames)


def test_it_is_a_relayed_only_client_format_whose_bodies_pass_unchecked() -> None:
    assert isinstance(BEDROCK_INVOKE, ClientFormat) and BEDROCK_INVOKE is not BEDROCK_CONVERSE
    parsed = BEDROCK_INVOKE.parse_body(b'{"prompt": "hi", "max_gen_len": 5}', "invoke")  # Llama's, not Converse's
    assert set(parsed.body) == {"prompt", "max_gen_len"} and parsed.models == [] and not parsed.stream
    for bad in (b"[]", b"", b'{"prompt": '):
        with pytest.raises(BadRequest):
            BEDROCK_INVOKE.parse_body(bad, "invoke")
    # Relayed-only: no canonical-model method at all (not stubs raising TypeError), and not `Converses`.
    assert not isinstance(BEDROCK_INVOKE, Converses) and isinstance(BEDROCK_CONVERSE, Converses)
    assert not any(hasattr(BEDROCK_INVOKE, name) for name in ("read_request", "write_request", "stream_writer"))
    assert stream_media_type(BEDROCK_INVOKE) == "application/vnd.amazon.eventstream"
    assert BEDROCK_INVOKE.error_headers(429)[0][1].startswith("ThrottlingException")


def test_only_a_format_that_relays_frames_has_a_frame_reader() -> None:
    assert isinstance(frame_reader(BEDROCK_INVOKE), InvokeFrames)
    assert frame_reader(BEDROCK_CONVERSE) is None


@pytest.mark.parametrize("size", [1, 3, 7, 64, 1 << 20])
def test_frames_come_out_whole_and_unchanged_however_the_bytes_are_split(size: int) -> None:
    raw = claude_stream()
    reader = InvokeFrames()
    out = []
    for at in range(0, len(raw), size):
        whole = reader.frames(raw[at : at + size])
        out.append(whole)
        if whole:  # every piece passed on is whole frames: botocore parses it with nothing left over
            buffer = EventStreamBuffer()
            buffer.add_data(whole)
            assert list(buffer) and not buffer._data
    assert b"".join(out) == raw  # byte for byte
    assert reader.ended and reader.failure is None
    assert reader.usage is not None and reader.usage.input > 0 and reader.usage.output > 0
    assert reader.chars == len("Echo from aws: hello there friend. ") + len(claude._FILLER)


def test_events_find_the_first_content_for_failover() -> None:
    raw = claude_stream()
    kinds = [event.kind for event in InvokeFrames().feed(raw)]
    assert kinds[:2] == ["start", "usage"] and "text" in kinds
    assert kinds[-3:] == ["finish", "usage", "end"] or kinds[-2:] == ["usage", "end"]


def chunk(data: dict[str, Any]) -> bytes:
    return event_frame("chunk", {"bytes": base64.b64encode(_encode(data)).decode()})


def test_bedrocks_metrics_are_the_usage_and_the_end_of_any_models_stream() -> None:
    titan = chunk({"outputText": "Hi", "index": 0})
    last = chunk(
        {
            "outputText": "!",
            "completionReason": "FINISH",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 7, "outputTokenCount": 2},
        }
    )
    reader = InvokeFrames()
    events = reader.feed(titan)
    assert [e.kind for e in events] == ["text"] and events[0].is_content and not reader.ended
    reader.feed(last)
    assert reader.ended and reader.usage == Usage(input=7, output=2) and reader.chars == 3


def test_an_exception_frame_is_passed_on_and_named() -> None:
    reader = InvokeFrames()
    frame = exception_frame("throttlingException", "slow down")
    assert reader.frames(frame) == frame
    assert reader.failure == "throttlingException: slow down" and not reader.ended


def test_claudes_error_event_in_a_chunk_is_an_error() -> None:
    events = InvokeFrames().feed(chunk({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}))
    assert [(e.kind, e.text) for e in events] == [("error", "busy")]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (struct.pack("!I", 8) + b"\x00" * 12, "a length of 8"),
        (struct.pack("!I", 1 << 30) + b"\x00" * 12, "a length of"),
        (chunk({"type": "ping"})[:-1] + b"\x00", "malformed event-stream frame"),  # its CRC broken
        (event_frame("chunk", {"bytes": "not base64!"}), "malformed chunk"),
        (event_frame("chunk", {"bytes": base64.b64encode(b"{not json").decode()}), "malformed chunk"),
        (event_frame("chunk", {"bytes": base64.b64encode(b"[1]").decode()}), "not a JSON object"),
    ],
)
def test_bytes_that_are_not_frames_are_refused(raw: bytes, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        InvokeFrames().frames(raw)


def test_an_incomplete_frame_is_held_back() -> None:
    raw = chunk({"type": "ping"})
    reader = InvokeFrames()
    assert reader.frames(raw[:-5]) == b""
    assert reader.frames(raw[-5:]) == raw
