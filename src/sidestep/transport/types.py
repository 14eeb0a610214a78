"""The upstream HTTP client seam.

`Transport.send()` opens one request to an upstream and returns an `UpstreamResponse` as soon as the
status line and headers are in; the body is read afterwards, whole (`read()`) or piece by piece
(`aiter_bytes()`). A response must be closed (`aclose()`, or `async with`) so its connection goes back
to the pool (body fully read) or is discarded (body not fully read / error).

Every failure is raised as one of sidestep's errors, translated in exactly one place in the
implementation: `UpstreamTimeout` (phase "connect", "headers" or "read") or `UpstreamConnectionError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

__all__ = ["Timeouts", "Transport", "UpstreamRequest", "UpstreamResponse"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. `headers` bounds the wait for the status line after the request is sent; `read` bounds
    each idle gap while reading the body. `None` means no limit."""

    connect: float | None = 10.0
    headers: float | None = 60.0
    read: float | None = 60.0


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str  # absolute: http://host:port/path?query or https://...
    headers: list[tuple[str, str]]
    body: bytes = b""
    timeouts: Timeouts = Timeouts()
    # Seconds from send() that every wait (connect, headers, each read) must fit in; None = no limit.
    # The response keeps honouring it while its body is read, until `lift_budget()`.
    budget: float | None = None


class UpstreamResponse(Protocol):
    status: int

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased names; repeated headers joined with ", "."""
        ...

    async def read(self) -> bytes: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def next_chunk(self) -> bytes | None:
        """The next body piece, or None at the end: `aiter_bytes` without a generator (the relay's hot path)."""
        ...

    async def pipe(self, sink: Callable[[bytes], None]) -> None:
        """Call `sink` with each body piece as it arrives, from the read callback, until the end of the
        body (then the connection is released); raises as `next_chunk` would. The relay's per-chunk
        fast path: no await per piece. `sink` must not block; it may call `pause_reading()`."""
        ...

    def pause_reading(self) -> None:
        """Stop reading the body (a piped reader is full); `resume_reading()` starts again."""
        ...

    def resume_reading(self) -> None: ...

    async def aclose(self) -> None: ...

    def lift_budget(self) -> None:
        """Stop applying the request's budget to further reads (a stream that is now the client's)."""
        ...

    async def __aenter__(self) -> UpstreamResponse: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...
