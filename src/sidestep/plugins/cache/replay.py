"""A cached answer served to the client that asks for it: in its format, whole or as a stream.

An answer stored from one format is rewritten for a client of another through the canonical model
(`sidestep.formats.translate`); a stream request gets the answer replayed as the server-sent events its format
uses (a start, the text, each tool call, the finish and usage, the end), in one write — framed as the client's
streams are (`formats.base.FramedStreams`: Gemini's JSON array opens with its `[`).
"""

from __future__ import annotations

from sidestep.core.model import ChatResponse, Event, ThinkingPart
from sidestep.formats.base import ClientFormat, Converses, Format, stream_media_type, stream_opening
from sidestep.formats.translate import translate_response
from sidestep.plugins.cache.store import Entry

__all__ = ["answer_events", "replayed", "replayed_type", "rewritten", "written_stream"]


def rewritten(entry: Entry, source: Format, client: Converses) -> bytes:
    """The stored answer (written in `source`) as a non-stream body in the `client`'s format."""
    if source is client:
        return entry.body
    return translate_response(entry.body, source, client)


def replayed(entry: Entry, source: Format, client: Converses, include_usage: bool) -> bytes:
    """The stored answer (written in `source`) as the whole SSE stream a `client` expects."""
    answer = source.read_response(entry.body)
    return written_stream(client, answer, include_usage)


def written_stream(client: Converses, answer: ChatResponse, include_usage: bool) -> bytes:
    """A whole answer as the whole stream a `client` reads (the MCP agent's final answer too)."""
    writer = client.stream_writer(answer.model, include_usage)
    opening = stream_opening(client) if stream_media_type(client) is not None else b""
    return opening + b"".join(writer.write(event) for event in answer_events(answer))


def replayed_type(client: ClientFormat) -> tuple[str, str]:
    """The content type of a replayed stream: SSE, or the client format's framed streams' own."""
    return ("content-type", stream_media_type(client) or "text/event-stream")


def answer_events(answer: ChatResponse) -> list[Event]:
    """A whole answer as the canonical stream events that carry it (the MCP agent's streamed answer too)."""
    events = [Event(kind="start", id=answer.id, model=answer.model)]
    for part in answer.parts:
        if isinstance(part, ThinkingPart):
            events.append(Event(kind="thinking", text=part.text))
            if part.signature:
                events.append(Event(kind="thinking", signature=part.signature))
        else:
            events.append(Event(kind="text", text=part.text))
    for index, call in enumerate(answer.tool_calls):
        events.append(Event(kind="tool_start", index=index, id=call.id, name=call.name))
        events.append(Event(kind="tool_args", index=index, text=call.arguments))
    events.append(Event(kind="finish", finish=answer.finish, stop_sequence=answer.stop_sequence))
    events.append(Event(kind="usage", usage=answer.usage))
    events.append(Event(kind="end"))
    return events
