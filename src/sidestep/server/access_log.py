"""The access log: one JSON line per HTTP request, written in batches off the request path
(`sidestep.batch`): a request costs one small tuple appended to a bounded buffer."""

from __future__ import annotations

import time
from typing import IO

from sidestep.batch import BatchWriter, open_sink, thousandths
from sidestep.server.types import Handler, Request, Response, StreamingResponse

__all__ = ["AccessLog", "open_sink"]

_HEADERS = {
    "x-sidestep-request-id": "id",
    "x-sidestep-provider": "provider",
    "x-sidestep-model": "model",
    "x-sidestep-attempts": "attempts",
}
_Pending = tuple[float, float, str, str, int, bool, list[tuple[str, str]], str | None]


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
        self._writer = BatchWriter[_Pending](
            sink, _record, name="access_log", interval=interval, max_lines=max_lines, owns_sink=owns_sink
        )

    async def handle(self, request: Request) -> Response | StreamingResponse:
        started = time.perf_counter()
        response = await self._handler(request)
        writer = self._writer
        if writer.full:
            writer.drop()
            return response
        # A tuple of small values now (never the bodies); the dict and its JSON are built at flush time.
        client = request.client[0] if request.client is not None else None
        stream = isinstance(response, StreamingResponse)
        took = time.perf_counter() - started
        writer.add((time.time(), took, request.method, request.path, response.status, stream, response.headers, client))
        return response

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _record(line: _Pending) -> dict[str, object]:
    return _line(*line)


def _line(
    ts: float,
    seconds: float,
    method: str,
    path: str,
    status: int,
    stream: bool,
    headers: list[tuple[str, str]],
    client: str | None,
) -> dict[str, object]:
    line: dict[str, object] = {
        "ts": thousandths(ts),
        "method": method,
        "path": path,
        "status": status,
        "ms": thousandths(seconds * 1000),  # to response headers, for streams
        "stream": stream,
    }
    for name, value in headers:
        field = _HEADERS.get(name)
        if field is not None:
            line[field] = value
    if client is not None:
        line["client"] = client
    return line
