"""What a format is: the Protocols a format object satisfies, one per capability.

Every format (`Format`) writes requests and reads answers and streams, so a provider can speak it. A format
that clients speak (`ClientFormat`) also parses their bodies, reads their requests, writes answers and
streams back, renders errors and in-stream errors in its own shape, says when a relayed stream is complete
and taps the usage out of it. Smaller abilities are protocols of their own (`Seams`, `ReadsEmbeddings`,
`WritesEmbeddings`); a format without one simply does not have the method — no stub raising "unsupported".
They are checked with `isinstance` where a format is chosen (the endpoint table, a provider's build), never
per request.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from sidestep.core.model import ChatRequest, ChatResponse, Event, Usage
from sidestep.errors import SidestepError, UpstreamError
from sidestep.formats.request import ParsedRequest
from sidestep.server.types import Response

__all__ = [
    "ClientFormat",
    "Format",
    "Reader",
    "ReadsEmbeddings",
    "Seam",
    "Seams",
    "Writer",
    "WritesEmbeddings",
]


class Reader(Protocol):
    """Stream bytes of one format in, canonical events out; accepts any split of the bytes."""

    def feed(self, piece: bytes) -> list[Event]: ...


class Writer(Protocol):
    """Canonical events in, stream bytes of one format out."""

    def write(self, event: Event) -> bytes: ...

    def error(self, message: str, code: str = "stream_interrupted") -> bytes: ...


class Seam(Protocol):
    def feed(self, piece: bytes) -> bytes: ...


@runtime_checkable
class Format(Protocol):
    """A wire API a provider speaks."""

    name: str  # for messages and logs only: code compares format objects, never names

    def write_request(self, request: ChatRequest) -> dict[str, Any]: ...

    def read_response(self, raw: bytes) -> ChatResponse: ...

    def stream_reader(self) -> Reader: ...


@runtime_checkable
class ClientFormat(Format, Protocol):
    """A wire API clients speak to the gateway."""

    def parse_body(self, raw: bytes, operation: str) -> ParsedRequest:
        """What routing needs, validated by the API's own rules; every other field stays undecoded."""
        ...

    def read_request(self, body: dict[str, Any]) -> ChatRequest: ...

    def write_response(self, response: ChatResponse) -> bytes: ...

    def stream_writer(self, model: str, include_usage: bool) -> Writer: ...

    def stream_complete(self, tail: bytes) -> bool:
        """The end-of-stream rule of a stream relayed as bytes: whether its last bytes (24 are kept) end it."""
        ...

    def stream_error(self, message: str, code: str = "stream_interrupted") -> bytes:
        """The event that ends a stream whose upstream failed after content was sent (the SDK raises on it)."""
        ...

    def error_response(self, exc: SidestepError, headers: list[tuple[str, str]] | None = None) -> Response: ...

    def upstream_error_response(self, error: UpstreamError, headers: list[tuple[str, str]]) -> Response: ...

    def render_server_error(self, status: int, message: str) -> Response:
        """Errors the HTTP layer raises itself (413, 431, malformed HTTP …)."""
        ...

    def include_usage(self, body: dict[str, Any]) -> bool:
        """Whether the client asked for usage in its stream."""
        ...

    def asking_usage(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The body with the upstream asked to report a stream's usage, when the API does not always."""
        ...

    def stream_usage(self, data: dict[str, Any]) -> tuple[Usage | None, bool]:
        """The usage one stream event carries, and whether the event is nothing but usage (droppable)."""
        ...

    def end_user(self, body: dict[str, Any]) -> str | None:
        """The end user the request names, if any (the request log records it)."""
        ...


@runtime_checkable
class Seams(Protocol):
    """A client format whose same-format continuation (`mid_stream: continue`) can be stitched as bytes.
    A client format without it has every continued stream translated instead."""

    def seam(self, stream_id: str) -> Seam: ...


@runtime_checkable
class ReadsEmbeddings(Protocol):
    def read_embeddings(self, raw: bytes) -> tuple[list[list[float]], int]: ...


@runtime_checkable
class WritesEmbeddings(Protocol):
    def write_embeddings(self, vectors: list[list[float]], tokens: int, model: str, encoding: Any) -> bytes: ...
