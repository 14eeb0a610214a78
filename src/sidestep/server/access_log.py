"""The access log: one JSON line per HTTP request, written in batches off the request path
(`sidestep.batch`): a request costs one small record appended to a bounded buffer."""

from __future__ import annotations

import time
from typing import IO

from sidestep.batch import BatchWriter, open_sink, thousandths
from sidestep.headers import picked
from sidestep.records import AccessLine
from sidestep.server.types import Handler, Request, Response, StreamingResponse

__all__ = ["AccessLog", "open_sink"]

_HEADERS = {  # response header → its index among `AccessLine`'s header fields
    "x-sidestep-provider": 0,
    "x-sidestep-model": 1,
    "x-sidestep-attempts": 2,
    "x-sidestep-request-id": 3,
}


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
        self._writer = BatchWriter[AccessLine](
            sink, name="access_log", interval=interval, max_lines=max_lines, owns_sink=owns_sink
        )

    async def handle(self, request: Request) -> Response | StreamingResponse:
        started = time.perf_counter()
        response = await self._handler(request)
        writer = self._writer
        if writer.full:
            writer.drop()
            return response
        took = time.perf_counter() - started
        served = picked(response.headers, _HEADERS)
        line = AccessLine(
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
