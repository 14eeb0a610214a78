"""A cached answer served to the client that asks for it: in its format, whole or as a stream.

An answer stored from one format is rewritten for a client of another through the canonical model
(`sidestep.translate`); a stream request gets the answer replayed as the server-sent events its format
uses (a start, the text, each tool call, the finish and usage, the end), in one write.
"""

from __future__ import annotations

from sidestep.core.model import ChatResponse, Event, ThinkingPart
from sidestep.plugins.cache.store import Entry
from sidestep.translate import read_answer, stream_writer, translate_response

__all__ = ["replayed", "rewritten"]


def rewritten(entry: Entry, dialect: str) -> bytes:
    """The stored answer as a non-stream body in `dialect`."""
    if entry.dialect == dialect:
        return entry.body
    return translate_response(entry.body, entry.dialect, dialect)


def replayed(entry: Entry, dialect: str, include_usage: bool) -> bytes:
    """The stored answer as the whole SSE stream a `dialect` client expects."""
    answer = read_answer(entry.body, entry.dialect)
    writer = stream_writer(dialect, answer.model, include_usage)
    return b"".join(writer.write(event) for event in _events(answer))


def _events(answer: ChatResponse) -> list[Event]:
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
