"""Gemini streams (`streamGenerateContent?alt=sse`) ↔ canonical events: a reader for a Gemini target's stream
and a writer of the stream a Gemini client reads. Every event is a whole `GenerateContentResponse`; the one
carrying `finishReason` ends the answer (there is no `[DONE]`), and an error is an event of its own,
`{"error": {"code", "message", "status"}}`, on which google-genai raises.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidestep.core.model import Event, ToolCall, Usage
from sidestep.formats.gemini.client import FINISH_OUT, function_call, usage_out
from sidestep.formats.gemini.convert import FINISH, blocked_reason, read_usage
from sidestep.formats.gemini.errors import error_object
from sidestep.formats.sse import SSESplitter

__all__ = ["StreamReader", "StreamWriter", "error_event", "error_payload"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_END = b"\r\n\r\n"  # as Google frames its events


def error_event(status: int, message: str) -> bytes:
    return b"data: " + error_payload(status, message) + _END


def error_payload(status: int, message: str) -> bytes:
    """The error element itself, `{"error": …}`, however the stream frames its events."""
    return _encode(error_object(status, message))


class StreamReader:
    """`streamGenerateContent?alt=sse` bytes in, canonical events out. Each event is a whole
    GenerateContentResponse; the one carrying `finishReason` ends the answer."""

    def __init__(self) -> None:
        self._splitter = SSESplitter()
        self._started = False
        self._calls = 0

    def feed(self, piece: bytes) -> list[Event]:
        events: list[Event] = []
        for data in self._splitter.feed(piece):
            item = _decode(data)
            if isinstance(item, dict):
                self.item(item, events)
        return events

    def item(self, item: dict[str, Any], events: list[Event]) -> None:
        """One decoded GenerateContentResponse's events, appended to `events` (a re-framed stream reads its
        items one by one: `formats.gemini.array`)."""
        if "error" in item:
            error = item["error"] if isinstance(item["error"], dict) else {"message": str(item["error"])}
            events.append(Event(kind="error", text=str(error.get("message", "")), error_type=error.get("status")))
            return
        blocked = blocked_reason(item)
        if blocked is not None:
            events.append(Event(kind="error", text=f"prompt blocked: {blocked}", error_type="content_policy"))
            return
        if not self._started:
            self._started = True
            events.append(
                Event(kind="start", id=str(item.get("responseId", "gemini")), model=str(item.get("modelVersion", "")))
            )
        candidate = (item.get("candidates") or [{}])[0]
        self._parts((candidate.get("content") or {}).get("parts") or [], events)
        reason = candidate.get("finishReason")
        if reason:
            finish = FINISH.get(str(reason), "stop")
            events.append(Event(kind="finish", finish="tool_calls" if self._calls and finish == "stop" else finish))
            events.append(Event(kind="usage", usage=read_usage(item.get("usageMetadata"))))
            events.append(Event(kind="end"))

    def _parts(self, parts: list[dict[str, Any]], events: list[Event]) -> None:
        for part in parts:
            if "functionCall" in part:
                call = part["functionCall"]
                index = self._calls
                self._calls += 1
                events.append(
                    Event(
                        kind="tool_start",
                        index=index,
                        id=call.get("id") or f"call_{index}",
                        name=str(call.get("name", "")),
                    )
                )
                events.append(Event(kind="tool_args", index=index, text=_encode(call.get("args") or {}).decode()))
            elif part.get("text"):
                events.append(Event(kind="thinking" if part.get("thought") else "text", text=part["text"]))


class StreamWriter:
    """Canonical events in, the SSE a Gemini client reads out. Text and thoughts go out as they come; a
    function call goes out whole (Gemini never streams arguments), once its arguments are complete."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._id = ""
        self._calls: dict[int, list[str]] = {}  # index → [id, name, arguments so far]
        self._finish = "STOP"
        self._usage: Usage | None = None
        self._ended = False

    def write(self, event: Event) -> bytes:
        kind = event.kind
        if kind == "start":
            self._id, self._model = self._id or event.id, event.model or self._model
        elif kind == "text" and event.text:
            return self._chunk([{"text": event.text}])
        elif kind == "thinking" and event.text:
            return self._chunk([{"text": event.text, "thought": True}])
        elif kind == "tool_start":
            self._calls[event.index] = [event.id, event.name, ""]
        elif kind == "tool_args" and event.index in self._calls:
            self._calls[event.index][2] += event.text
        elif kind == "finish":
            self._finish = FINISH_OUT.get(event.finish or "stop", "STOP")
        elif kind == "usage" and event.usage is not None:
            self._usage = event.usage
        elif kind == "error":
            status = 503 if event.error_type in (None, "overloaded_error") else 500
            return self._frame(error_payload(status, event.text))
        elif kind == "end" and not self._ended:
            self._ended = True
            return self._last()
        return b""

    def error(self, message: str, code: str = "stream_interrupted") -> bytes:
        return error_event(400 if code == "upstream_rejected" else 503, message)

    def _last(self) -> bytes:
        parts = [
            function_call(ToolCall(id=ident, name=name, arguments=args))
            for ident, name, args in (self._calls[i] for i in sorted(self._calls))
        ]
        self._calls = {}
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}} if parts else {}
        candidate.update(finishReason=self._finish, index=0)
        return self._event([candidate], usage_out(self._usage or Usage()))

    def _chunk(self, parts: list[dict[str, Any]]) -> bytes:
        return self._event([{"content": {"role": "model", "parts": parts}, "index": 0}], None)

    def _event(self, candidates: list[dict[str, Any]], usage: dict[str, int] | None) -> bytes:
        data: dict[str, Any] = {"candidates": candidates}
        if usage is not None:
            data["usageMetadata"] = usage
        data["modelVersion"] = self._model
        data["responseId"] = self._id or "sidestep"
        return self._frame(_encode(data))

    def _frame(self, payload: bytes) -> bytes:
        """One GenerateContentResponse (or error) as the stream carries it: an SSE event here; an element of
        the JSON array in `formats.gemini.array.ArrayWriter`."""
        return b"data: " + payload + _END
