"""Incremental Server-Sent Events framing: bytes in, complete `data:` payloads out."""

from __future__ import annotations

__all__ = ["SSESplitter", "data_of", "sse_comment", "sse_data"]


class SSESplitter:
    """Feed raw bytes as they arrive; get back the data payload of every event completed so far.

    Events end at a blank line (`\\n\\n`, or `\\r\\n\\r\\n`); multi-line data is joined with `\\n` as the SSE
    spec says. Comment lines (`:`) and other fields are ignored.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, piece: bytes) -> list[bytes]:
        buffer = self._buffer + piece if self._buffer else piece
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events: list[bytes] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            data = data_of(buffer[start:end])
            if data is not None:
                events.append(data)
            start = end + 2
        self._buffer = buffer[start:]
        return events


def data_of(event: bytes) -> bytes | None:
    """The data payload of one event (its lines without the blank line that ends it); None if it has none."""
    if event.startswith(b"data: ") and b"\n" not in event:  # the usual event: one data line
        return event[6:]
    lines = [line for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    parts = [line[6:] if line.startswith(b"data: ") else line[5:] for line in lines]
    return b"\n".join(parts)


def sse_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def sse_comment(text: str) -> bytes:
    return b": " + text.encode() + b"\n\n"
