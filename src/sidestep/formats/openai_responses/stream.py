"""Responses streams: canonical events → the Responses event sequence (`StreamWriter`), and that sequence →
canonical events (`StreamReader`).

The writer opens an output item when its kind of content starts (a message for text, a reasoning item for
thinking, a function call per tool call) and closes it, with its `.done` events, when another starts or the
answer ends; `response.completed` (or `response.incomplete`) carries the whole answer and its usage.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from sidestep.core.model import ChatResponse, Event, Finish, TextPart, ThinkingPart, ToolCall, Usage
from sidestep.formats.openai_responses.convert import call_item, message_item, read_usage, response_object
from sidestep.formats.sse import SSESplitter

__all__ = ["END_MARKS", "StreamReader", "StreamWriter", "error_event", "failed_events"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def _sse(payload: dict[str, Any]) -> bytes:
    kind: str = payload["type"]
    return b"event: " + kind.encode() + b"\ndata: " + _encode(payload) + b"\n\n"


def error_event(message: str, code: str | None = "stream_interrupted", sequence: int = 0) -> bytes:
    return _sse({"type": "error", "code": code, "message": message, "param": None, "sequence_number": sequence})


_ENDS = ("response.completed", "response.incomplete", "response.failed")
# What only the event that ends a stream holds, however the upstream writes it (`formats.base.EndMarks`).
END_MARKS = tuple(
    mark
    for kind in _ENDS
    for mark in (
        b"\nevent: " + kind.encode() + b"\n",
        b'"type":"' + kind.encode() + b'"',
        b'"type": "' + kind.encode() + b'"',
    )
)


def failed_events(head: bytes, message: str, code: str = "stream_interrupted") -> bytes:
    """`error`, then `response.failed` carrying the response the stream opened (its `response.created`, found
    in the stream's first bytes `head`: the same id and model), for a stream whose events were relayed as they
    came (not read: the failed response lists no output). Without such a head, a response of its own."""
    response: dict[str, Any] = {}
    try:
        for data in SSESplitter().feed(head):
            event = _decode(data)
            if isinstance(event, dict) and event.get("type") == "response.created":
                response = dict(event.get("response") or {})
                break
    except (msgspec.DecodeError, ValueError):
        response = {}
    if not isinstance(response.get("id"), str):
        response = response_object(ChatResponse(id="sidestep", model=""), "failed")
    response.update(status="failed", error={"code": "server_error", "message": message}, output=[], usage=None)
    failed = {"type": "response.failed", "response": response, "sequence_number": 1}
    return error_event(message, code) + _sse(failed)


class _Item:
    """The output item being written: its place, its id and what it has said so far."""

    __slots__ = ("call", "id", "index", "kind", "text")

    def __init__(self, kind: str, index: int, item_id: str, call: ToolCall | None = None) -> None:
        self.kind, self.index, self.id, self.call = kind, index, item_id, call
        self.text = ""


class StreamWriter:
    """Canonical events in, Responses events out."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self._model = model
        self._id = ""
        self._created = int(time.time())
        self._seq = 0
        self._open: _Item | None = None
        self._items: list[_Item] = []
        self._calls: dict[int, _Item] = {}  # canonical tool index → its item
        self._finish: Finish = "stop"
        self._usage = Usage()
        self._ended = False

    def write(self, event: Event) -> bytes:
        kind = event.kind
        if kind == "start":
            return b"" if self._id else self._start(event.id, event.model)
        prefix = b"" if self._id or kind in ("error", "end") else self._start("sidestep", "")
        if kind == "text":
            return prefix + self._text("message", event.text)
        if kind == "thinking":
            return prefix + (self._text("reasoning", event.text) if event.text else b"")
        if kind == "tool_start":
            return prefix + self._tool_start(event)
        if kind == "tool_args":
            return prefix + self._tool_args(event)
        if kind == "finish" and event.finish is not None:
            self._finish = event.finish
        elif kind == "usage" and event.usage is not None:
            self._usage = event.usage
        elif kind == "error":
            return self.error(event.text, event.error_type or "server_error")
        elif kind == "end" and not self._ended:
            return self._end()
        return prefix

    def error(self, message: str, code: str = "stream_interrupted") -> bytes:
        """`error`, then `response.failed` carrying the response so far (its id, the output items sent);
        once only: an upstream's own error event and the relay's verdict on it are one failure."""
        if self._ended:
            return b""
        self._ended = True
        out = error_event(message, code, self._next())
        response = self._response("failed")
        response["error"] = {"code": "server_error", "message": message}
        return out + self._emit({"type": "response.failed", "response": response})

    # -- the sequence ------------------------------------------------------------------------------------

    def _next(self) -> int:
        self._seq += 1
        return self._seq - 1

    def _emit(self, payload: dict[str, Any]) -> bytes:
        payload["sequence_number"] = self._next()
        return _sse(payload)

    def _start(self, stream_id: str, model: str) -> bytes:
        self._id = stream_id if stream_id.startswith("resp_") else f"resp_{stream_id}"
        self._model = model or self._model
        response = self._response("in_progress")
        created = self._emit({"type": "response.created", "response": response})
        return created + self._emit({"type": "response.in_progress", "response": response})

    def _open_item(self, kind: str, call: ToolCall | None = None) -> bytes:
        out = self._close()
        index = len(self._items)
        prefix = {"message": "msg", "reasoning": "rs", "function_call": "fc"}[kind]
        item = self._open = _Item(kind, index, f"{prefix}_{self._id[5:]}_{index}", call)
        self._items.append(item)
        out += self._emit({"type": "response.output_item.added", "output_index": index, "item": self._item(item)})
        where = {"item_id": item.id, "output_index": index}
        if kind == "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            added = {"type": "response.content_part.added", **where, "content_index": 0, "part": part}
            out += self._emit(added)
        elif kind == "reasoning":
            part = {"type": "summary_text", "text": ""}
            out += self._emit(
                {"type": "response.reasoning_summary_part.added", **where, "summary_index": 0, "part": part}
            )
        return out

    def _text(self, kind: str, text: str) -> bytes:
        out = b"" if self._open is not None and self._open.kind == kind else self._open_item(kind)
        item = self._open
        assert item is not None  # opened above
        item.text += text
        where = {"item_id": item.id, "output_index": item.index, "delta": text}
        if kind == "message":
            return out + self._emit({"type": "response.output_text.delta", **where, "content_index": 0, "logprobs": []})
        return out + self._emit({"type": "response.reasoning_summary_text.delta", **where, "summary_index": 0})

    def _tool_start(self, event: Event) -> bytes:
        call = ToolCall(id=event.id or f"call_{event.index}", name=event.name, arguments="")
        out = self._open_item("function_call", call)
        assert self._open is not None
        self._calls[event.index] = self._open
        return out

    def _tool_args(self, event: Event) -> bytes:
        item = self._calls.get(event.index)
        if item is None or item.call is None:
            return b""  # arguments for a call that never started: nothing a client could attach them to
        item.call.arguments += event.text
        delta = {"item_id": item.id, "output_index": item.index, "delta": event.text}
        return self._emit({"type": "response.function_call_arguments.delta", **delta})

    def _close(self) -> bytes:
        item, self._open = self._open, None
        if item is None:
            return b""
        where = {"item_id": item.id, "output_index": item.index}
        out = b""
        if item.kind == "message":
            part = {"type": "output_text", "text": item.text, "annotations": [], "logprobs": []}
            out += self._emit(
                {"type": "response.output_text.done", **where, "content_index": 0, "text": item.text, "logprobs": []}
            )
            out += self._emit({"type": "response.content_part.done", **where, "content_index": 0, "part": part})
        elif item.kind == "reasoning":
            part = {"type": "summary_text", "text": item.text}
            out += self._emit(
                {"type": "response.reasoning_summary_text.done", **where, "summary_index": 0, "text": item.text}
            )
            out += self._emit(
                {"type": "response.reasoning_summary_part.done", **where, "summary_index": 0, "part": part}
            )
        elif item.call is not None:
            done = {"type": "response.function_call_arguments.done", **where, "arguments": item.call.arguments}
            out += self._emit({**done, "name": item.call.name})
        done_item = {"type": "response.output_item.done", "output_index": item.index, "item": self._item(item, True)}
        return out + self._emit(done_item)

    def _end(self) -> bytes:
        self._ended = True
        out = self._close() if self._id else self._start("sidestep", "")
        response = self._response("completed")
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        return out + self._emit({"type": kind, "response": response})

    def _item(self, item: _Item, done: bool = False) -> dict[str, Any]:
        status = "completed" if done else "in_progress"
        if item.kind == "message":
            return message_item(item.id, item.text if done else None, status)
        if item.kind == "reasoning":
            return {
                "type": "reasoning",
                "id": item.id,
                "summary": [{"type": "summary_text", "text": item.text}] if done else [],
            }
        assert item.call is not None
        return call_item(item.id, item.call.id, item.call.name, item.call.arguments if done else "", status)

    def _response(self, status: str) -> dict[str, Any]:
        answer = ChatResponse(
            id=self._id,
            model=self._model,
            parts=[
                ThinkingPart(text=i.text) if i.kind == "reasoning" else TextPart(text=i.text)
                for i in self._items
                if i.kind != "function_call"
            ],
            tool_calls=[i.call for i in self._items if i.call is not None],
            finish=self._finish,
            usage=self._usage,
            created=self._created,
        )
        response = response_object(answer, status)
        response["output"] = [self._item(i, True) for i in self._items]  # the ids the stream used
        if status == "in_progress":
            response["usage"] = None
        return response


class StreamReader:
    """Responses events in, canonical events out (a target that streams Responses, and round trips)."""

    def __init__(self) -> None:
        self._splitter = SSESplitter()
        self._tools: dict[int, int] = {}  # output_index → canonical tool index
        self._failed = False  # `error` and `response.failed` report one failure

    def feed(self, piece: bytes) -> list[Event]:
        events: list[Event] = []
        for data in self._splitter.feed(piece):
            event = _decode(data)
            if isinstance(event, dict):
                self._event(event, events)
        return events

    def _event(self, event: dict[str, Any], events: list[Event]) -> None:
        kind = event.get("type")
        if kind == "response.created":
            response = event.get("response") or {}
            events.append(Event(kind="start", id=str(response.get("id", "")), model=str(response.get("model", ""))))
        elif kind == "response.output_text.delta":
            events.append(Event(kind="text", text=str(event.get("delta", ""))))
        elif kind == "response.reasoning_summary_text.delta":
            events.append(Event(kind="thinking", text=str(event.get("delta", ""))))
        elif kind == "response.output_item.added" and (event.get("item") or {}).get("type") == "function_call":
            item = event["item"]
            index = self._tools.setdefault(int(event.get("output_index", 0)), len(self._tools))
            events.append(
                Event(kind="tool_start", index=index, id=str(item.get("call_id")), name=str(item.get("name")))
            )
        elif kind == "response.function_call_arguments.delta":
            index = self._tools.get(int(event.get("output_index", 0)), 0)
            events.append(Event(kind="tool_args", index=index, text=str(event.get("delta", ""))))
        elif kind in ("response.completed", "response.incomplete"):
            response = event.get("response") or {}
            reason = (response.get("incomplete_details") or {}).get("reason")
            finish: Finish = "tool_calls" if self._tools else "length" if reason == "max_output_tokens" else "stop"
            events.append(Event(kind="finish", finish=finish))
            events.append(Event(kind="usage", usage=read_usage(response.get("usage"))))
            events.append(Event(kind="end"))
        elif kind in ("error", "response.failed") and not self._failed:
            self._failed = True
            error = (event.get("response") or {}).get("error") or event
            events.append(Event(kind="error", text=str(error.get("message", "")), error_type=error.get("code")))
