"""The forward relay's end-of-stream rule for a format whose last event is too long for the tail rule (the
Responses API, `formats.base.EndMarks`): a stream is complete once an end mark went by — split between two
pieces too — and not when only a delta's text mentions the event; a broken one ends with `error` and
`response.failed` naming the response the stream opened (`ReopensStreams`)."""

from __future__ import annotations

import json

import pytest

from sidestep.config.model import NO_POLICY, KeyConfig, TargetNode
from sidestep.core.model import Event, Usage
from sidestep.errors import Attempt, UpstreamConnectionError
from sidestep.formats.openai_responses import OPENAI_RESPONSES
from sidestep.relay.forward import Forward
from sidestep.relay.job import StreamJob
from sidestep.routing.served import Served
from sidestep.transport.fake import FakeResponse


def _stream(text: str = "Hello there") -> bytes:
    writer = OPENAI_RESPONSES.stream_writer("m", True)
    events = [
        Event(kind="start", id="abc", model="m"),
        Event(kind="text", text=text),
        Event(kind="finish", finish="stop"),
        Event(kind="usage", usage=Usage(input=1, output=2)),
        Event(kind="end"),
    ]
    return b"".join(writer.write(e) for e in events)


async def _relay(chunks: list[bytes], error: Exception | None = None) -> tuple[bytes, list[str | None]]:
    verdicts: list[str | None] = []

    def judge(served: Served, failure: str | None) -> Attempt | None:
        verdicts.append(failure)
        return None

    response = FakeResponse(chunks=chunks[1:], body_error=error)
    served = Served(TargetNode("p", "m"), KeyConfig(None), response, [], NO_POLICY, OPENAI_RESPONSES)  # type: ignore[arg-type]
    served.held, served.unread = [chunks[0]], True
    job = StreamJob(judge, {}, [], "fail", OPENAI_RESPONSES, OPENAI_RESPONSES, True)
    out = b"".join([piece async for piece in Forward(served, job)])
    return out, verdicts


@pytest.mark.parametrize("cut", [1, 7, 9, 14, 20, 30])
async def test_an_end_mark_split_between_two_pieces_still_ends_the_stream(cut: int) -> None:
    wire = _stream()
    at = wire.index(b"\nevent: response.completed") + cut  # inside the mark (or just past it)
    head_end = wire.index(b"response.output_text.delta")
    out, verdicts = await _relay([wire[:head_end], wire[head_end:at], wire[at:]])
    assert out == wire and verdicts == [None]


async def test_a_stream_without_its_end_event_is_incomplete_even_when_text_names_it() -> None:
    wire = _stream('the last event is "type":"response.completed" and then event: response.completed')
    cut = wire.index(b"event: response.output_text.done")  # every event up to the text's end, then a clean close
    head_end = wire.index(b"response.output_text.delta")
    out, verdicts = await _relay([wire[:head_end], wire[head_end:cut]])
    assert verdicts and verdicts[0] is not None and "before it was complete" in verdicts[0]
    events = [json.loads(line[6:]) for line in out.decode().split("\n") if line.startswith("data: ")]
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-1]["response"]["id"] == events[0]["response"]["id"] == "resp_abc"
    assert events[-1]["response"]["status"] == "failed"


async def test_a_break_names_the_response_the_stream_opened() -> None:
    wire = _stream()
    head_end = wire.index(b"response.output_text.delta")
    cut = wire.index(b"\n\n", head_end) + 2  # the break comes after the first delta, between two events
    out, verdicts = await _relay([wire[:head_end], wire[head_end:cut]], UpstreamConnectionError("reset"))
    assert verdicts[0] is not None and "failed mid-stream" in verdicts[0]
    assert out.startswith(wire[:cut])
    ending = out[cut:]
    events = [json.loads(line[6:]) for line in ending.decode().split("\n") if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["error", "response.failed"]
    assert events[-1]["response"]["id"] == "resp_abc"


def test_without_a_head_the_failed_response_is_its_own() -> None:
    out = OPENAI_RESPONSES.stream_error("no target could serve it", code="all_targets_failed")
    events = [json.loads(line[6:]) for line in out.decode().split("\n") if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["error", "response.failed"]
    assert events[0]["code"] == "all_targets_failed" and events[1]["response"]["id"].startswith("resp_")
