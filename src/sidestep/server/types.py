"""The HTTP server seam: what a handler receives and returns.

The server implementation (`sidestep.server.protocol`) speaks HTTP/1.1 on the wire and calls one
`Handler` per request. Handlers never see sockets: they get a fully-read `Request` and return a
`Response` (fixed body) or a `StreamingResponse` (body produced by an async iterator, sent with
chunked transfer encoding as each piece arrives, never buffered).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from sidestep.headers import header_dict
from sidestep.server.heads import head_pairs, head_value, pair_value

__all__ = [
    "AbortConnection",
    "Endpoint",
    "Handler",
    "Outlet",
    "Request",
    "Response",
    "StreamingResponse",
]


class Request:
    """One inbound request. Header names are lower-cased; repeated headers are joined with ", ".

    The server hands over the head's raw bytes (or, for a pipelined request, its raw header pairs): one
    header is found in them when asked (`header`), the `headers` mapping is built on first use, so a
    handler that never looks (the gateway's fast path) never pays for splitting a dozen SDK headers."""

    __slots__ = ("_head", "_headers", "_raw", "body", "client", "http_version", "method", "path", "query")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str] | None,
        body: bytes,
        client: tuple[str, int] | None = None,
        http_version: str = "1.1",
        raw_headers: list[tuple[bytes, bytes]] | None = None,
        raw_head: bytes | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self._headers = headers
        self._raw = raw_headers
        self._head = raw_head  # the request's head as received, split into `_raw` on first use
        self.body = body
        self.client = client
        self.http_version = http_version

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = header_dict(self._pairs())
        return self._headers

    def header(self, name: str) -> str | None:
        """One header's value (`name` lower-case), found without decoding the others; the first if repeated."""
        if self._headers is not None:
            return self._headers.get(name)
        wanted = name.encode("latin-1")
        if self._raw is None and self._head is not None:
            value = head_value(self._head, wanted)
        else:
            value = pair_value(self._raw or [], wanted)
        return value.decode("latin-1") if value is not None else None

    def _pairs(self) -> list[tuple[bytes, bytes]]:
        if self._raw is None:
            if self._head is None:
                return []
            self._raw, self._head = head_pairs(self._head), None
        return self._raw

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path})"


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
    prelude: bytes = b""  # body bytes already in hand: sent in the same write as the head (one syscall)
    # Run once the body is over, told whether all of it was sent (False: the client left, or it failed).
    on_done: Callable[[bool], None] | None = None
    # Writes the body itself through an `Outlet` as its pieces arrive; when set, the server calls it instead of
    # iterating `body`, so a relayed piece costs no await (the same-format relay's `Forward.pipe`).
    pipe: Callable[[Outlet], Awaitable[None]] | None = None


class Outlet(Protocol):
    """Where a streaming body that writes itself writes (`StreamingResponse.pipe`)."""

    def write(self, piece: bytes) -> None:
        """Send `piece` at once (chunk-framed when the response is chunked); dropped once the client left."""
        ...

    @property
    def paused(self) -> bool:
        """The client's socket buffer is full: stop feeding until the resume callback runs."""
        ...

    def on_resume(self, callback: Callable[[], None] | None) -> None:
        """Run `callback` when a paused client can take more again."""
        ...

    async def drain(self) -> None:
        """Wait until a paused client can take more again (a writer that awaits rather than being called back)."""
        ...


class AbortConnection(Exception):
    """Raised by a handler or a streaming body to cut the TCP connection at once (RST, no final chunk).

    Used by the provider simulator to play connection resets and mid-stream drops.
    """


Handler = Callable[[Request], Awaitable[Response | StreamingResponse]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A path a plugin or an observer answers besides the gateway's own (`ServesEndpoints`). `name` labels
    it in the outcome record (`Exchange.operation`) and metrics."""

    name: str
    # `handler(request)`; a `guarded` one is `handler(request, caller, exchange)`.
    handler: Callable[..., Awaitable[Response | StreamingResponse]]
    method: str = "GET"
    observed: bool = True  # False: not traffic (the metrics scrape): no outcome record, no log line
    methods: tuple[str, ...] = ()  # more methods the same handler answers (MCP's GET and DELETE besides POST)
    # The gateway authenticates the caller first, as for a proxied request (a refusal is its 401), and hands
    # the handler who it is (the authenticating plugin's answer: a virtual key) and the outcome record, if kept.
    guarded: bool = False
