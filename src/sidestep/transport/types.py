"""The upstream HTTP client seam.

`Transport.send()` opens one request to an upstream and returns an `UpstreamResponse` as soon as the
status line and headers are in: status, headers, one read primitive (`next_chunk()`) and close. The body is
read afterwards with `next_chunk()` or the helpers built on it (`sidestep.transport.body`: `read_all`,
`chunks`). A response must be closed (`aclose()`, or `async with`) so its connection goes back to the pool
(body fully read) or is discarded (body not fully read / error).

What only some responses can do is an optional capability its class declares among its bases, found once by
whoever needs it: `Pipes` (push the body into a callback, no await per piece; `can_pipe()`), `Budgeted` (the
request's budget applies to body reads until lifted; `is_budgeted()`) and `Buffered` (the whole body may be in
with the headers; `is_buffered()`, which `read_all` asks).

Every failure is raised as one of sidestep's errors, translated in exactly one place in the
implementation: `UpstreamTimeout` (phase "connect", "headers" or "read") or `UpstreamConnectionError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TypeGuard

__all__ = [
    "Budgeted",
    "Buffered",
    "Pipes",
    "Timeouts",
    "Transport",
    "UpstreamRequest",
    "UpstreamResponse",
    "can_pipe",
    "is_budgeted",
    "is_buffered",
]


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
    # A `Budgeted` response keeps honouring it while its body is read, until `lift_budget()`.
    budget: float | None = None


class UpstreamResponse(Protocol):
    """Status, headers, one read primitive and close. Reading a whole body or iterating it are helpers built on
    `next_chunk` (`sidestep.transport.body`); piping and lifting the budget are optional capabilities (`Pipes`,
    `Budgeted`), not members every response must have."""

    status: int

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased names; repeated headers joined with ", "."""
        ...

    async def next_chunk(self) -> bytes | None:
        """The next body piece, or None at the end of the body (then the connection is released)."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> UpstreamResponse: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Pipes(Protocol):
    """Optional: the body pushed into a callback as it arrives, with no await per piece (the relay's per-chunk
    fast path). A response class that can names `Pipes` among its bases; `can_pipe()` finds it."""

    __slots__ = ()

    async def pipe(self, sink: Callable[[bytes], None]) -> None:
        """Call `sink` with each body piece as it arrives, from the read callback, until the end of the
        body (then the connection is released); raises as `next_chunk` would. `sink` must not block; it
        may call `pause_reading()`."""
        ...

    def pause_reading(self) -> None:
        """Stop reading the body (a piped reader is full); `resume_reading()` starts again."""
        ...

    def resume_reading(self) -> None: ...


class Budgeted(Protocol):
    """Optional: a response that honours its request's `budget` while its body is read, until lifted. A response
    class that does names `Budgeted` among its bases; `is_budgeted()` finds it."""

    __slots__ = ()

    def lift_budget(self) -> None:
        """Stop applying the request's budget to further reads (a stream that is now the client's)."""
        ...


class Buffered(Protocol):
    """Optional: a response that may hold its whole body by the time its headers are in (a small JSON answer);
    `transport.body.read_all` then takes it in one call instead of reading to the end piece by piece."""

    __slots__ = ()

    def buffered(self) -> bytes | None:
        """The whole body when all of it is in (the connection is then released), else None."""
        ...


# A capability is declared, not probed: one look in the class's MRO instead of `getattr` on members or `isinstance`
# against a runtime-checkable Protocol (~7 µs on Python 3.11, measured: more than a whole relayed chunk).


def can_pipe(response: UpstreamResponse) -> TypeGuard[Pipes]:
    """Whether `response`'s class declares `Pipes`."""
    return Pipes in type(response).__mro__


def is_budgeted(response: UpstreamResponse) -> TypeGuard[Budgeted]:
    """Whether `response`'s class declares `Budgeted`."""
    return Budgeted in type(response).__mro__


def is_buffered(response: UpstreamResponse) -> TypeGuard[Buffered]:
    """Whether `response`'s class declares `Buffered`."""
    return Buffered in type(response).__mro__


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...
