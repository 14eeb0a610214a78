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
        events = piece.replace(b"\r\n", b"\n").split(b"\n\n") if b"\r\n" in piece else piece.split(b"\n\n")
        kept: list[bytes] = []
        dropped = False
        for event in events:
            if b'"usage"' in event and b'"usage":null' not in event:
                data = _data(event)
                if data is not None and self._take(data):
                    dropped = True
                    continue
            kept.append(event)
        return b"\n\n".join(kept) if dropped or b"\r\n" in piece else piece

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
