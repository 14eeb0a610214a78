"""ConverseStream's bytes: AWS event-stream frames, read (`StreamReader`) and written (`StreamWriter`).

One encoder, `frame`, for the gateway's streams to Bedrock clients and for the simulator's (`sidestep.sim`);
frames are read with botocore's own decoder (`EventStreamBuffer`, imported on first use: `sidestep[bedrock]`),
so what is written here is checked by what the SDK reads. A frame is: a prelude (total and header lengths
and their CRC32), string-typed headers (`:event-type`, `:message-type` …), a JSON payload and the CRC32 of
it all. `metadata` (usage) arrives after `messageStop`, so the canonical `end` is read (and written) there.
"""

from __future__ import annotations

import struct
import time
import zlib
from typing import Any

import msgspec

from sidestep.core.model import Event, Finish, Usage
from sidestep.formats.bedrock_converse.convert import FINISH, POLICY_STOPS, STOP_REASONS, read_usage, usage_out

__all__ = ["EXCEPTIONS", "StreamReader", "StreamWriter", "event_frame", "exception_frame", "frame"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_MAX_HEADER = 0xFFFF  # a string header's value is at most this long (a 2-byte length)
# The in-stream exceptions ConverseStream's output shape names: botocore raises `EventStreamError` with these.
EXCEPTIONS = {
    "stream_interrupted": "modelStreamErrorException",
    "all_targets_failed": "serviceUnavailableException",
    "upstream_rejected": "validationException",
}


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: string-typed headers (type 7), payload, CRC32s."""
    encoded = b"".join(
        struct.pack("!B", len(name)) + name.encode() + b"\x07" + struct.pack("!H", len(value)) + value.encode()
        for name, value in headers.items()
        if len(value.encode()) <= _MAX_HEADER
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))


def event_frame(name: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, _encode(payload))


def exception_frame(kind: str, message: str) -> bytes:
    """An in-stream exception (`:message-type: exception`): boto3 raises `EventStreamError` naming `kind`."""
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, _encode({"message": message}))


class StreamReader:
    """ConverseStream bytes (AWS event-stream frames) in, canonical events out; frames may be split anywhere."""

    def __init__(self) -> None:
        from botocore.eventstream import EventStreamBuffer  # optional dependency: sidestep[bedrock]

        self._buffer = EventStreamBuffer()
        self._calls: dict[int, int] = {}  # content block index → tool call index

    def feed(self, piece: bytes) -> list[Event]:
        from botocore.eventstream import ParserError
        from botocore.exceptions import EventStreamError

        events: list[Event] = []
        self._buffer.add_data(piece)
        try:
            for message in self._buffer:
                self._frame(message.headers, message.payload, events)
        except (ParserError, EventStreamError, msgspec.DecodeError) as exc:
            raise ValueError(f"malformed event-stream frame: {exc}") from exc
        return events

    def _frame(self, headers: dict[str, Any], payload: bytes, events: list[Event]) -> None:
        kind = headers.get(":message-type", "event")
        data = _decode(payload) if payload else {}
        if kind != "event":  # exception or error frame
            name = str(headers.get(":exception-type") or headers.get(":error-code") or "error")
            message = str(data.get("message") or data.get("Message") or name) if isinstance(data, dict) else name
            events.append(Event(kind="error", text=f"{name}: {message}", error_type=name))
            return
        self._event(str(headers.get(":event-type", "")), data if isinstance(data, dict) else {}, events)

    def _event(self, name: str, data: dict[str, Any], events: list[Event]) -> None:
        if name == "messageStart":
            events.append(Event(kind="start", id=f"bedrock-{int(time.time() * 1000)}"))
        elif name == "contentBlockStart":
            use = (data.get("start") or {}).get("toolUse")
            if use:
                index = self._calls.setdefault(int(data.get("contentBlockIndex", 0)), len(self._calls))
                ident, tool = str(use.get("toolUseId", "")), str(use.get("name", ""))
                events.append(Event(kind="tool_start", index=index, id=ident, name=tool))
        elif name == "contentBlockDelta":
            self._delta(int(data.get("contentBlockIndex", 0)), data.get("delta") or {}, events)
        elif name == "messageStop":
            stop = str(data.get("stopReason", "end_turn"))
            if stop in POLICY_STOPS:
                text = f"the model's answer was stopped: {stop}"
                events.append(Event(kind="error", text=text, error_type="content_policy"))
                return
            events.append(Event(kind="finish", finish=FINISH.get(stop, "stop")))
        elif name == "metadata":
            events.append(Event(kind="usage", usage=read_usage(data.get("usage"))))
            events.append(Event(kind="end"))

    def _delta(self, block: int, delta: dict[str, Any], events: list[Event]) -> None:
        if "text" in delta:
            events.append(Event(kind="text", text=str(delta["text"])))
        elif "toolUse" in delta:
            index = self._calls.setdefault(block, len(self._calls))
            events.append(Event(kind="tool_args", index=index, text=str((delta["toolUse"] or {}).get("input", ""))))
        elif "reasoningContent" in delta:
            reasoning = delta["reasoningContent"] or {}
            if "text" in reasoning:
                events.append(Event(kind="thinking", text=str(reasoning["text"])))
            elif "signature" in reasoning:
                events.append(Event(kind="thinking", signature=str(reasoning["signature"])))


class StreamWriter:
    """Canonical events in, ConverseStream frames out: `messageStart`, then per content block
    `contentBlockStart` (tool calls) / `contentBlockDelta`s / `contentBlockStop`, `messageStop` and, last,
    `metadata` with the usage. A mid-stream switch (another target carries on) stays one message."""

    def __init__(self) -> None:
        self._started = False
        self._ended = False
        self._index = -1  # the open content block's index
        self._block: str | None = None  # its kind: text, reasoning, tool
        self._tools: dict[int, int] = {}  # canonical tool index → content block index
        self._stop = "end_turn"
        self._usage: Usage | None = None

    def write(self, event: Event) -> bytes:
        kind = event.kind
        if kind == "start":
            return self._start()
        if kind == "error":
            return exception_frame("modelStreamErrorException", event.text or "the model stream failed")
        out = b"" if self._started or kind in ("usage", "end") else self._start()
        if kind == "text":
            return out + self._open("text") + self._delta({"text": event.text})
        if kind == "thinking":
            out += self._open("reasoning")
            if event.signature:
                return out + self._delta({"reasoningContent": {"signature": event.signature}})
            return out + self._delta({"reasoningContent": {"text": event.text}})
        if kind == "tool_start":
            out += self._close()
            self._index += 1
            self._block = "tool"
            self._tools[event.index] = self._index
            start = {"toolUse": {"toolUseId": event.id, "name": event.name}}
            return out + event_frame("contentBlockStart", {"contentBlockIndex": self._index, "start": start})
        if kind == "tool_args":
            index = self._tools.get(event.index, self._index)
            delta = {"contentBlockIndex": index, "delta": {"toolUse": {"input": event.text}}}
            return out + event_frame("contentBlockDelta", delta)
        return out + self._tail(event)

    def _tail(self, event: Event) -> bytes:
        if event.kind == "finish":
            self._stop = _stop_reason(event.finish, event.stop_sequence)
            return b""
        if event.kind == "usage" and event.usage is not None:
            self._usage = event.usage
            return b""
        if event.kind == "end" and not self._ended:
            self._ended = True
            out = self._start() + self._close()
            out += event_frame("messageStop", {"stopReason": self._stop})
            return out + event_frame("metadata", {"usage": usage_out(self._usage), "metrics": {"latencyMs": 0}})
        return b""

    def error(self, message: str, code: str = "stream_interrupted") -> bytes:
        return exception_frame(EXCEPTIONS.get(code, "modelStreamErrorException"), message)

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return event_frame("messageStart", {"role": "assistant"})

    def _open(self, kind: str) -> bytes:
        if self._block == kind:
            return b""
        out = self._close()
        self._index += 1
        self._block = kind
        return out

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return event_frame("contentBlockDelta", {"contentBlockIndex": self._index, "delta": delta})

    def _close(self) -> bytes:
        if self._block is None:
            return b""
        self._block = None
        return event_frame("contentBlockStop", {"contentBlockIndex": self._index})


def _stop_reason(finish: Finish | None, stop_sequence: str | None) -> str:
    if stop_sequence:
        return "stop_sequence"
    return STOP_REASONS.get(finish or "stop", "end_turn")
