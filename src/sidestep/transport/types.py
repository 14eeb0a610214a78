"""The upstream HTTP client seam.

`Transport.send()` opens one request to an upstream and returns an `UpstreamResponse` as soon as the
status line and headers are in: status, headers, one read primitive (`next_chunk()`) and close. The body is
read afterwards with `next_chunk()` or the helpers built on it (`sidestep.transport.body`: `read_all`,
`chunks`). A response must be closed (`aclose()`, or `async with`) so its connection goes back to the pool
(body fully read) or is discarded (body not fully read / error).

What only some responses can do is an optional capability its class declares among its bases, found once by
whoever needs it: `Pipes` (push the body into a callback, no await per piece; `pipes()`) and `Budgeted` (the
request's budget applies to body reads until lifted; `budgeted()`).

Every failure is raised as one of sidestep's errors, translated in exactly one place in the
implementation: `UpstreamTimeout` (phase "connect", "headers" or "read") or `UpstreamConnectionError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, cast

__all__ = ["Budgeted", "Pipes", "Timeouts", "Transport", "UpstreamRequest", "UpstreamResponse", "budgeted", "pipes"]


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
    fast path). A response class that can names `Pipes` among its bases; `pipes()` finds it."""

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
    class that does names `Budgeted` among its bases; `budgeted()` finds it."""

    __slots__ = ()

    def lift_budget(self) -> None:
        """Stop applying the request's budget to further reads (a stream that is now the client's)."""
        ...


# A capability is declared, not probed: one look in the class's MRO (~50 ns) instead of `getattr` on members or
# `isinstance` against a runtime-checkable Protocol (~7 µs on Python 3.11, measured: more than a whole relayed chunk).


def pipes(response: UpstreamResponse) -> Pipes | None:
    """`response` as `Pipes`, when its class declares the capability."""
    return cast(Pipes, response) if Pipes in type(response).__mro__ else None


def budgeted(response: UpstreamResponse) -> Budgeted | None:
    """`response` as `Budgeted`, when its class declares the capability."""
    return cast(Budgeted, response) if Budgeted in type(response).__mro__ else None


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...
