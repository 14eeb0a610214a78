"""Token usage read from a stream that is forwarded byte for byte.

Only events that carry usage are decoded: OpenAI's last chunk (sent when `stream_options.include_usage` is on,
which the gateway turns on when a plugin needs usage) and Anthropic's `message_start` and `message_delta`, and
Gemini's every event (`usageMetadata`, cumulative: the tap keeps the most): where a format's usage is, and which
event is nothing but usage, the format says (`Converses.stream_usage`, and `MarksUsage` for a name other than
`"usage"`). The tap passes every complete event on at once and holds back only an incomplete trailing one — a
client could not use half an event anyway — so nothing is buffered. When the client did not ask for usage
itself, the usage-only chunk the gateway asked for is removed, as the client expects.

The events passed on are also kept (up to `KEEP` bytes; past that only counted), unread: when a stream
ends without its usage (the client left first, the upstream never reports it) `relayed_chars` reads them
once to tell how much answer was relayed, which is then charged by estimate (`sidestep.plugins.estimate`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidestep.core.model import Usage, merge_usage
from sidestep.formats.base import Converses, Wire
from sidestep.formats.sse import data_of

__all__ = ["KEEP", "UsageTap", "relayed_text"]

_decode = msgspec.json.Decoder().decode
KEEP = 1 << 20  # bytes of relayed events kept per stream for `relayed_chars`
_ANSWER = frozenset({"text", "thinking", "tool_start", "tool_args"})  # event kinds that are answer tokens


class UsageTap:
    __slots__ = ("_drop", "_format", "_kept", "_marker", "_partial", "_relayed", "usage")

    def __init__(self, format: Converses, drop_usage_chunk: bool = False) -> None:
        self._format = format
        # What events name it (`formats.base.MarksUsage`), read as an attribute: a runtime-protocol isinstance
        # costs ~7 µs, on every tapped stream.
        self._marker: bytes = format.usage_marker if hasattr(format, "usage_marker") else b'"usage"'  # `capability`
        self._drop = drop_usage_chunk
        self._partial = b""
        self._kept: list[bytes] = []
        self._relayed = 0  # bytes of complete events passed on
        self.usage: Usage | None = None

    def relayed_chars(self) -> int:
        """Characters of answer (text, thinking, tool calls) in the events passed on so far; past `KEEP`
        bytes, extrapolated from the part kept."""
        kept = self._kept
        chars = relayed_text(self._format, kept)
        size = sum(len(piece) for piece in kept)
        return chars * self._relayed // size if size and self._relayed > size else chars

    def kept(self) -> list[bytes] | None:
        """Every complete event passed on, or None when they were more than `KEEP` bytes (only counted)."""
        return self._kept if self._relayed <= KEEP else None

    def feed(self, piece: bytes) -> bytes:
        """The complete events in what has arrived so far, usage chunk removed when asked."""
        if self._partial:
            piece, self._partial = self._partial + piece, b""
        lf, crlf = piece.rfind(b"\n\n"), piece.rfind(b"\r\n\r\n")
        cut = max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
        if cut < len(piece):
            if cut == 0:  # no event completed yet
                self._partial = piece
                return b""
            piece, self._partial = piece[:cut], piece[cut:]
        if self._marker in piece:
            piece = self._read(piece)
        self._relayed += len(piece)
        if self._relayed <= KEEP:  # kept for `relayed_chars`
            self._kept.append(piece)
        return piece

    def flush(self) -> bytes:
        """What is left when the stream ends (an incomplete last event, passed on as it came)."""
        rest, self._partial = self._partial, b""
        return rest

    def _read(self, piece: bytes) -> bytes:
        """Decode the events of `piece` (complete ones) that carry usage, dropping the usage chunk when
        asked. They are found by searching, not by walking every event: OpenAI puts `"usage":null` in
        every chunk, so most mentions are skipped with one comparison."""
        if b"\r\n" in piece:
            piece = piece.replace(b"\r\n", b"\n")
        kept: list[bytes] = []
        settled = 0  # piece[:settled] is decided: kept[] holds what of it goes on
        marker = self._marker
        at = piece.find(marker)
        while at >= 0:
            if piece.startswith(b'"usage":null', at):
                at = piece.find(marker, at + 12)
                continue
            start = piece.rfind(b"\n\n", 0, at)  # the event around this mention
            start = start + 2 if start >= 0 else 0
            stop = piece.find(b"\n\n", at)
            stop = stop if stop >= 0 else len(piece)
            data = _data(piece[start:stop])
            if data is not None and self._take(data):
                kept.append(piece[settled:start])
                settled = min(stop + 2, len(piece))  # the event and the blank line that ends it
            at = piece.find(marker, stop)
        if not settled:
            return piece
        kept.append(piece[settled:])
        return b"".join(kept)

    def _take(self, data: dict[str, Any]) -> bool:
        """Record the usage in `data`; True when the event should be dropped."""
        usage, only_usage = self._format.stream_usage(data)
        if usage is None:
            return False
        self.usage = merge_usage(self.usage, usage)
        return self._drop and only_usage


def relayed_text(format: Wire, pieces: list[bytes]) -> int:
    """Characters of answer in stream bytes of `format`."""
    reader = format.stream_reader()
    chars = 0
    for piece in pieces:
        try:
            events = reader.feed(piece)
        except ValueError:  # a malformed event: not answer the client could use
            continue
        for event in events:
            if event.kind in _ANSWER:
                chars += len(event.text) + len(event.name)
    return chars


def _data(event: bytes) -> dict[str, Any] | None:
    payload = data_of(event)
    if payload is None:
        return None
    try:
        data = _decode(payload)
    except msgspec.DecodeError:
        return None
    return data if isinstance(data, dict) else None
