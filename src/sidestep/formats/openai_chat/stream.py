"""OpenAI chat-completion streams: chunks in (`StreamReader`), chunks out (`StreamWriter`), and the seam that
makes a same-format continuation read as the stream it continues (`Seam`).

Same-format streams never come here (they are relayed as bytes) except through the seam of `mid_stream:
continue`; the reader also tells the relay, before the first content, whether a stream failed or refused.
"""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec

from sidestep.core.model import Event
from sidestep.formats.openai_chat.convert import FINISH_IN, read_usage, usage_out
from sidestep.formats.openai_chat.wire import Chunk, ChunkChoice
from sidestep.formats.sse import SSESplitter, sse_data

__all__ = ["Seam", "StreamReader", "StreamWriter", "error_event"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


_decode_chunk = msgspec.json.Decoder(Chunk).decode


class StreamReader:
    """OpenAI stream bytes in, canonical events out."""

    def __init__(self) -> None:
        self._splitter = SSESplitter()
        self._started = False

    def feed(self, piece: bytes) -> list[Event]:
        events: list[Event] = []
        for data in self._splitter.feed(piece):
            if data == b"[DONE]":
                events.append(Event(kind="end"))
                continue
            chunk = _read_chunk(data)
            if chunk is None:
                continue
            if chunk.error:
                error = chunk.error if isinstance(chunk.error, dict) else {"message": str(chunk.error)}
                events.append(Event(kind="error", text=str(error.get("message", "")), error_type=error.get("type")))
                continue
            if not self._started:
                self._started = True
                events.append(Event(kind="start", id=str(chunk.id), model=str(chunk.model)))
            if chunk.choices:
                _choices(chunk.choices, events)
            if chunk.usage:
                events.append(Event(kind="usage", usage=read_usage(chunk.usage)))
        return events


def _read_chunk(data: bytes) -> Chunk | None:
    """A chunk's fields, or None for data that is JSON but not an object (skipped, as before)."""
    try:
        return _decode_chunk(data)
    except msgspec.ValidationError:
        if isinstance(_decode(data), dict):
            raise  # an object whose fields have impossible shapes ("choices": 3): malformed
        return None


def _choices(choices: list[ChunkChoice], events: list[Event]) -> None:
    for choice in choices:
        delta = choice.delta
        if delta is not None:
            thinking = delta.reasoning_content or delta.reasoning
            if isinstance(thinking, str) and thinking:
                events.append(Event(kind="thinking", text=thinking))
            if isinstance(delta.content, str) and delta.content:
                events.append(Event(kind="text", text=delta.content))
            if delta.tool_calls:
                _tool_calls(delta.tool_calls, events)
        if choice.finish_reason:
            events.append(Event(kind="finish", finish=FINISH_IN.get(choice.finish_reason, "stop")))


def _tool_calls(calls: Any, events: list[Event]) -> None:
    for call in calls:
        index = int(call.get("index", 0))
        function = call.get("function") or {}
        if call.get("id") or function.get("name"):
            events.append(
                Event(kind="tool_start", index=index, id=call.get("id") or "", name=function.get("name") or "")
            )
        if function.get("arguments"):
            events.append(Event(kind="tool_args", index=index, text=function["arguments"]))


class StreamWriter:
    """Canonical events in, OpenAI `chat.completion.chunk` events out."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = ""
        self._created = int(time.time())
        self._started = False
        self._ended = False

    def write(self, event: Event) -> bytes:
        kind = event.kind
        if kind == "start":
            if self._started:
                return b""  # a mid-stream switch: the client already has its first chunk
            self._started = True
            self._id = event.id if event.id.startswith("chatcmpl") else f"chatcmpl-{event.id}"
            self._model = event.model or self._model
            return self._chunk({"role": "assistant", "content": ""})
        prefix = b"" if self._started or kind in ("error", "end") else self.write(Event(kind="start", id="sidestep"))
        return prefix + self._body(event)

    def _body(self, event: Event) -> bytes:
        kind = event.kind
        if kind == "text":
            return self._chunk({"content": event.text})
        if kind == "thinking":
            return self._chunk({"reasoning_content": event.text}) if event.text else b""
        if kind == "tool_start":
            call = {
                "index": event.index,
                "id": event.id,
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            return self._chunk({"tool_calls": [call]})
        if kind == "tool_args":
            return self._chunk({"tool_calls": [{"index": event.index, "function": {"arguments": event.text}}]})
        if kind == "finish":
            return self._chunk({}, "stop" if event.finish == "error" else event.finish)
        if kind == "usage" and event.usage is not None and self._include_usage:
            payload = self._payload([])
            payload["usage"] = usage_out(event.usage)
            return b"data: " + _encode(payload) + b"\n\n"
        if kind == "error":
            return error_event(event.text, event.error_type or "server_error")
        if kind == "end" and not self._ended:
            self._ended = True
            return b"data: [DONE]\n\n"
        return b""

    def error(self, message: str, code: str = "stream_interrupted") -> bytes:
        return error_event(message, "server_error", code)

    def _payload(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + _encode(self._payload([choice])) + b"\n\n"


def error_event(message: str, type_: str = "server_error", code: str | None = "stream_interrupted") -> bytes:
    payload = _encode({"error": {"message": message, "type": type_, "param": None, "code": code}})
    return b"data: " + payload + b"\n\n"


class Seam:
    """A same-format continuation made to read as the stream it continues (the translating writers do
    this by construction): the `role` of its opening chunk is removed — the chunk itself when nothing
    else is in it — and its chunks carry the continued stream's id."""

    def __init__(self, stream_id: str) -> None:
        self._splitter = SSESplitter()
        self._id = _encode(stream_id) if stream_id else b""
        self._own: re.Pattern[bytes] | None = None
        self._opened = False

    def feed(self, piece: bytes) -> bytes:
        out = []
        for data in self._splitter.feed(piece):
            if not self._opened and data != b"[DONE]":
                data = self._opening(data)
                if not data:
                    continue
            elif self._own is not None:
                data = self._own.sub(b'"id":' + self._id, data, count=1)
            out.append(sse_data(data))
        return b"".join(out)

    def _opening(self, data: bytes) -> bytes:
        try:
            chunk = _decode(data)
        except msgspec.DecodeError:
            return data  # not for the seam to judge: the relay reports a malformed stream
        if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list):
            return data
        self._opened = True
        own = chunk.get("id")
        if isinstance(own, str) and own and self._id:
            self._own = re.compile(rb'"id":\s*' + re.escape(_encode(own)))
            chunk["id"] = _decode(self._id)
        deltas = [c.get("delta") for c in chunk["choices"] if isinstance(c, dict)]
        for delta in deltas:
            if isinstance(delta, dict):
                delta.pop("role", None)
        empty = all(not c.get("finish_reason") for c in chunk["choices"] if isinstance(c, dict)) and all(
            not any(delta.values()) for delta in deltas if isinstance(delta, dict)
        )
        return b"" if empty and not chunk.get("usage") else _encode(chunk)
