"""A transport built from a function, for tests without sockets (httpx's MockTransport idea)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

from sidestep.transport.types import UpstreamRequest

__all__ = ["FakeResponse", "FakeTransport"]


@dataclass(slots=True)
class FakeResponse:
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

    async def pipe(self, sink: Callable[[bytes], None]) -> None:
        while (piece := await self.next_chunk()) is not None:
            sink(piece)

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.aiter_bytes()])

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        while (piece := await self.next_chunk()) is not None:
            yield piece

    async def aclose(self) -> None:
        self.closed = True

    def lift_budget(self) -> None:
        return None

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
