"""Token usage read from a stream that is forwarded byte for byte.

Only events that carry usage are decoded: OpenAI's last chunk (sent when `stream_options.include_usage`
is on, which the gateway turns on when a plugin needs usage) and Anthropic's `message_start` and
`message_delta`. The tap passes every complete event on at once and holds back only an incomplete
trailing one — a client could not use half an event anyway — so nothing is buffered. When the client did
not ask for usage itself, the usage-only chunk the gateway asked for is removed, as the client expects.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidestep.core.model import Usage, merge_usage
from sidestep.dialects import anthropic_messages, openai_chat
from sidestep.dialects.sse import data_of

__all__ = ["UsageTap"]

_decode = msgspec.json.Decoder().decode


class UsageTap:
    __slots__ = ("_drop", "_partial", "_wire", "usage")

    def __init__(self, wire: str, *, drop_usage_chunk: bool = False) -> None:
        self._wire = wire
        self._drop = drop_usage_chunk and wire == "openai"
        self._partial = b""
        self.usage: Usage | None = None

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
        if b'"usage"' in piece:
            return self._read(piece)
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
        at = piece.find(b'"usage"')
        while at >= 0:
            if piece.startswith(b'"usage":null', at):
                at = piece.find(b'"usage"', at + 12)
                continue
            start = piece.rfind(b"\n\n", 0, at)  # the event around this mention
            start = start + 2 if start >= 0 else 0
            stop = piece.find(b"\n\n", at)
            stop = stop if stop >= 0 else len(piece)
            data = _data(piece[start:stop])
            if data is not None and self._take(data):
                kept.append(piece[settled:start])
                settled = min(stop + 2, len(piece))  # the event and the blank line that ends it
            at = piece.find(b'"usage"', stop)
        if not settled:
            return piece
        kept.append(piece[settled:])
        return b"".join(kept)

    def _take(self, data: dict[str, Any]) -> bool:
        """Record the usage in `data`; True when the event should be dropped."""
        if self._wire == "anthropic":
            usage = data.get("usage")
            message = data.get("message")
            if usage is None and isinstance(message, dict):
                usage = message.get("usage")
            if isinstance(usage, dict):
                self.usage = merge_usage(self.usage, anthropic_messages.read_usage(usage))
            return False
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.usage = merge_usage(self.usage, openai_chat.read_usage(usage))
            return self._drop and not data.get("choices")
        return False


def _data(event: bytes) -> dict[str, Any] | None:
    payload = data_of(event)
    if payload is None:
        return None
    try:
        data = _decode(payload)
    except msgspec.DecodeError:
        return None
    return data if isinstance(data, dict) else None
