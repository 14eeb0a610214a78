"""The HTTP server seam: what a handler receives and returns.

The server implementation (`sidestep.server.protocol`) speaks HTTP/1.1 on the wire and calls one
`Handler` per request. Handlers never see sockets: they get a fully-read `Request` and return a
`Response` (fixed body) or a `StreamingResponse` (body produced by an async iterator, sent with
chunked transfer encoding as each piece arrives, never buffered).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

__all__ = [
    "AbortConnection",
    "Handler",
    "Request",
    "Response",
    "StreamingResponse",
]


@dataclass(slots=True)
class Request:
    """One inbound request. Header names are lower-cased; repeated headers are joined with ", "."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    client: tuple[str, int] | None = None
    http_version: str = "1.1"


@dataclass(slots=True)
class Response:
    """A response with its whole body known. `Content-Length` is added by the server."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class StreamingResponse:
    """A response whose body arrives piece by piece (SSE). Sent chunked; each piece is flushed at once.

    If the client disconnects, the server stops iterating and calls `aclose()` on the iterator (when
    it has one) so the producer can release its upstream connection.
    """

    status: int
    body: AsyncIterator[bytes]
    headers: list[tuple[str, str]] = field(default_factory=list)


class AbortConnection(Exception):
    """Raised by a handler or a streaming body to cut the TCP connection at once (RST, no final chunk).

    Used by the provider simulator to play connection resets and mid-stream drops.
    """


Handler = Callable[[Request], Awaitable[Response | StreamingResponse]]
