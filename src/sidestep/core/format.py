"""What a wire format is, seen from routing and from the canonical model. Every format an answer may be served in
(`Wire`) has a name and reads its streams into canonical events (routing reads a stream up to its first content);
a format a provider adapter speaks (`Format`) also writes requests and reads answers through the canonical model.
A relayed-only API's format (`sidestep.formats.passthrough`) is a `Wire` and nothing more. The format objects live
in `sidestep.formats`; these Protocols sit here, in the lowest layer, so that routing can hold what was served by
its format without knowing any format.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from sidestep.core.model import ChatRequest, ChatResponse, Event, Usage

__all__ = ["Format", "Reader", "Translator", "Wire", "Writer"]


class Reader(Protocol):
    """Stream bytes of one format in, canonical events out; accepts any split of the bytes."""

    def feed(self, piece: bytes) -> list[Event]: ...


class Writer(Protocol):
    """Canonical events in, stream bytes of one format out."""

    def write(self, event: Event) -> bytes: ...

    def error(self, message: str, code: str = "stream_interrupted") -> bytes: ...


class Translator(Protocol):
    """A provider's stream bytes in, the client's stream bytes out, as they arrive: the canonical reader-to-writer
    translation (`formats.translate.StreamTranslator`), or what a client format builds itself
    (`formats.base.TranslatesStreams`). `ended`: the provider's stream reached its end event."""

    ended: bool
    usage: Usage | None  # what the provider reported

    def feed(self, piece: bytes) -> bytes: ...

    def relayed_chars(self) -> int: ...


@runtime_checkable
class Wire(Protocol):
    """Any wire API an answer may be served in, relayed-only ones included (what `Served.format` holds). Code
    compares format objects by identity, never by `name`."""

    name: str  # for messages and logs only

    def stream_reader(self) -> Reader: ...


@runtime_checkable
class Format(Wire, Protocol):
    """A wire API a provider speaks through the canonical model: a request in another format is translated to it,
    its answers and streams are read into the canonical model."""

    def write_request(self, request: ChatRequest) -> dict[str, Any]: ...

    def read_response(self, raw: bytes) -> ChatResponse: ...
