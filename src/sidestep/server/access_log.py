"""The access log: one JSON line per HTTP request, written in batches off the request path
(`sidestep.batch`): a request costs one small record appended to a bounded buffer."""

from __future__ import annotations

import time
from typing import IO

import msgspec

from sidestep.batch import BatchWriter, open_sink, thousandths
from sidestep.server.types import Handler, Request, Response, StreamingResponse

__all__ = ["AccessLog", "open_sink"]

_HEADERS = {  # response header → its index among `_Line`'s header fields
    "x-sidestep-provider": 0,
    "x-sidestep-model": 1,
    "x-sidestep-attempts": 2,
    "x-sidestep-request-id": 3,
}


class _Line(msgspec.Struct, gc=False, omit_defaults=True):
    """One line, built in one call when the response head is ready. Plain values only (never the request,
    its headers or bodies), kept out of the garbage collector's sight until the flush encodes the batch."""

    ts: float
    method: str
    path: str
    status: int
    ms: float  # to the response head (streams: to their first event)
    stream: bool
    provider: str | None = None
    model: str | None = None
    attempts: str | None = None
    id: str | None = None
    client: str | None = None


class AccessLog:
    """Wraps a handler; `handle` is the handler to serve. `close()` writes what is left."""

    def __init__(
        self,
        handler: Handler,
        sink: IO[bytes],
        *,
        interval: float = 0.1,
        max_lines: int = 10_000,
        owns_sink: bool = False,
    ) -> None:
        self._handler = handler
        self._writer = BatchWriter[_Line](
            sink, None, name="access_log", interval=interval, max_lines=max_lines, owns_sink=owns_sink
        )

    async def handle(self, request: Request) -> Response | StreamingResponse:
        started = time.perf_counter()
        response = await self._handler(request)
        writer = self._writer
        if writer.full:
            writer.drop()
            return response
        took = time.perf_counter() - started
        served: list[str | None] = [None, None, None, None]
        for name, value in response.headers:  # a membership test per header: every request pays for this
            if name in _HEADERS:
                served[_HEADERS[name]] = value
        line = _Line(
            thousandths(time.time()),
            request.method,
            request.path,
            response.status,
            thousandths(took * 1000.0),
            isinstance(response, StreamingResponse),
            served[0],
            served[1],
            served[2],
            served[3],
            request.client[0] if request.client is not None else None,
        )
        writer.add(line)
        return response

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
