"""Anthropic Messages streams: events in (`StreamReader`), Anthropic's exact event sequence out (`StreamWriter`).

Same-format streams are relayed as bytes; these are for cross-format pairs and for mid-stream switches, where
the client's stream must stay one message across targets.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidestep.core.model import Event, Usage
from sidestep.formats.anthropic_messages.convert import FINISH_IN, FINISH_OUT, message_id, read_usage, usage_out
from sidestep.formats.sse import SSESplitter

__all__ = ["StreamReader", "StreamWriter", "error_event"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def error_event(message: str, kind: str = "api_error") -> bytes:
    return b"event: error\ndata: " + _encode({"type": "error", "error": {"type": kind, "message": message}}) + b"\n\n"


class StreamReader:
    """Anthropic stream bytes in, canonical events out."""

    def __init__(self) -> None:
        self._splitter = SSESplitter()
        self._tools: dict[int, int] = {}  # content block index → tool call ordinal
        self._input = 0

    def feed(self, piece: bytes) -> list[Event]:
        events: list[Event] = []
        for data in self._splitter.feed(piece):
            item = _decode(data)
            if isinstance(item, dict):
                self._event(item, events)
        return events

    def _event(self, item: dict[str, Any], events: list[Event]) -> None:
        kind = item.get("type")
        if kind == "message_start":
            message = item.get("message") or {}
            self._input = read_usage(message.get("usage")).input
            events.append(Event(kind="start", id=str(message.get("id", "")), model=str(message.get("model", ""))))
        elif kind == "content_block_start":
            block = item.get("content_block") or {}
            if block.get("type") == "tool_use":
                ordinal = self._tools.setdefault(int(item.get("index", 0)), len(self._tools))
                events.append(
                    Event(kind="tool_start", index=ordinal, id=block.get("id", ""), name=block.get("name", ""))
                )
            elif block.get("type") == "text" and block.get("text"):
                events.append(Event(kind="text", text=block["text"]))
        elif kind == "content_block_delta":
            self._delta(int(item.get("index", 0)), item.get("delta") or {}, events)
        elif kind == "message_delta":
            delta = item.get("delta") or {}
            if delta.get("stop_reason"):
                finish = FINISH_IN.get(delta["stop_reason"], "stop")
                events.append(Event(kind="finish", finish=finish, stop_sequence=delta.get("stop_sequence")))
            usage = item.get("usage") or {}
            read = read_usage({"input_tokens": 0, **usage})
            events.append(
                Event(
                    kind="usage",
                    usage=Usage(
                        input=self._input + read.input,
                        output=read.output,
                        cached=read.cached,
                        cache_write=read.cache_write,
                    ),
                )
            )
        elif kind == "message_stop":
            events.append(Event(kind="end"))
        elif kind == "error":
            error = item.get("error") or {}
            events.append(Event(kind="error", text=str(error.get("message", "")), error_type=error.get("type")))

    def _delta(self, index: int, delta: dict[str, Any], events: list[Event]) -> None:
        kind = delta.get("type")
        if kind == "text_delta":
            events.append(Event(kind="text", text=delta.get("text", "")))
        elif kind == "thinking_delta":
            events.append(Event(kind="thinking", text=delta.get("thinking", "")))
        elif kind == "signature_delta":
            events.append(Event(kind="thinking", signature=delta.get("signature")))
        elif kind == "input_json_delta" and delta.get("partial_json"):
            events.append(Event(kind="tool_args", index=self._tools.get(index, 0), text=delta["partial_json"]))


class StreamWriter:
    """Canonical events in, Anthropic's exact event sequence out: message_start, content blocks (start,
    deltas, stop), message_delta with the stop reason and usage, message_stop."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._ended = False
        self._block: str | None = None  # type of the open content block
        self._index = -1
        self._tools: dict[int, int] = {}  # tool ordinal → block index
        self._finish: str = "end_turn"
        self._stop_sequence: str | None = None
        self._usage = Usage()

    def write(self, event: Event) -> bytes:
        kind = event.kind
        if kind == "start":
            return self._start(event.id, event.model)
        out = b"" if self._started or kind == "error" else self._start("sidestep", "")
        if kind == "text":
            return (
                out
                + self._open("text", {"type": "text", "text": ""})
                + self._delta({"type": "text_delta", "text": event.text})
            )
        if kind == "thinking":
            out += self._open("thinking", {"type": "thinking", "thinking": ""})
            if event.signature:
                return out + self._delta({"type": "signature_delta", "signature": event.signature})
            return out + self._delta({"type": "thinking_delta", "thinking": event.text})
        if kind == "tool_start":
            out += self._close()
            self._index += 1
            self._block = "tool_use"
            self._tools[event.index] = self._index
            block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            return out + _sse(
                "content_block_start", {"type": "content_block_start", "index": self._index, "content_block": block}
            )
        if kind == "tool_args":
            index = self._tools.get(event.index, self._index)
            delta = {"type": "input_json_delta", "partial_json": event.text}
            return out + _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        return out + self._tail(event)

    def _tail(self, event: Event) -> bytes:
        if event.kind == "finish":
            self._finish = FINISH_OUT.get(event.finish or "stop", "end_turn")
            self._stop_sequence = event.stop_sequence
            return self._close()
        if event.kind == "usage" and event.usage is not None:
            self._usage = event.usage
            return b""
        if event.kind == "error":
            return error_event(event.text, event.error_type or "api_error")
        if event.kind == "end" and not self._ended:
            self._ended = True
            delta = {"stop_reason": self._finish, "stop_sequence": self._stop_sequence}
            usage = usage_out(self._usage)
            return (
                self._close()
                + _sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
                + _sse("message_stop", {"type": "message_stop"})
            )
        return b""

    def error(self, message: str, code: str = "stream_interrupted") -> bytes:
        return error_event(message, "overloaded_error" if code == "all_targets_failed" else "api_error")

    def _start(self, ident: str, model: str) -> bytes:
        if self._started:
            return b""  # a mid-stream switch: the client already has its message_start
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(ident),
            "type": "message",
            "role": "assistant",
            "model": model or self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _sse("message_start", {"type": "message_start", "message": message}) + _sse("ping", {"type": "ping"})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        if self._block == kind:
            return b""
        out = self._close()
        self._index += 1
        self._block = kind
        return out + _sse(
            "content_block_start", {"type": "content_block_start", "index": self._index, "content_block": block}
        )

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _sse("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})

    def _close(self) -> bytes:
        if self._block is None:
            return b""
        self._block = None
        return _sse("content_block_stop", {"type": "content_block_stop", "index": self._index})


def _sse(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(payload) + b"\n\n"
