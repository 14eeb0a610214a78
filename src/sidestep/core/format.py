"""What a wire format is, seen from the canonical model: it writes requests, reads answers, and reads and
writes streams as canonical events. The format objects live in `sidestep.formats`; these Protocols sit here,
in the lowest layer, so that routing can hold what was served by its format without knowing any format.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from sidestep.core.model import ChatRequest, ChatResponse, Event

__all__ = ["Format", "Reader", "Writer"]


class Reader(Protocol):
    """Stream bytes of one format in, canonical events out; accepts any split of the bytes."""

    def feed(self, piece: bytes) -> list[Event]: ...


class Writer(Protocol):
    """Canonical events in, stream bytes of one format out."""

    def write(self, event: Event) -> bytes: ...

    def error(self, message: str, code: str = "stream_interrupted") -> bytes: ...


@runtime_checkable
class Format(Protocol):
    """A wire API a provider speaks. Code compares format objects by identity, never by `name`."""

    name: str  # for messages and logs only

    def write_request(self, request: ChatRequest) -> dict[str, Any]: ...

    def read_response(self, raw: bytes) -> ChatResponse: ...

    def stream_reader(self) -> Reader: ...
