"""A transport built from a function, for tests without sockets (httpx's MockTransport idea).

`FakeResponse` has what `UpstreamResponse` asks and nothing more: no optional capability (`Pipes`, `Budgeted`),
so what it drives takes the paths every transport gets (the relay iterates `next_chunk`)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

from sidestep.transport.types import UpstreamRequest

__all__ = ["FakeResponse", "FakeTransport"]


@dataclass(slots=True)
class FakeResponse:
    """An answer in hand: `body` (or `chunks`) read through `next_chunk`."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes] | None = None  # when set, the body is these pieces, in order
    delay_before_headers: float = 0.0
    error: Exception | None = None  # raised by send() (after the delay) instead of answering
    body_error: Exception | None = None  # raised while reading, after the chunks
    closed: bool = False
    _next: int = 0

    async def next_chunk(self) -> bytes | None:
        pieces = self.chunks if self.chunks is not None else [self.body]
        if self._next < len(pieces):
            self._next += 1
            return pieces[self._next - 1]
        if self.body_error is not None:
            raise self.body_error
        return None

    async def aclose(self) -> None:
        self.closed = True

    async def __aenter__(self) -> FakeResponse:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


Answer = Callable[[UpstreamRequest], "Awaitable[FakeResponse] | FakeResponse"]


class FakeTransport:
    def __init__(self, handler: Answer) -> None:
        self.handler = handler
        self.requests: list[UpstreamRequest] = []

    async def send(self, request: UpstreamRequest) -> FakeResponse:
        self.requests.append(request)
        result = self.handler(request)
        response = await result if inspect.isawaitable(result) else result
        if response.delay_before_headers:
            await asyncio.sleep(response.delay_before_headers)
        if response.error is not None:
            raise response.error
        return response

    async def aclose(self) -> None:
        return None
