"""The access log: one JSON line per request, written in batches off the request path.

A request appends a small dict to an in-memory buffer; a timer writes the buffer every `interval`
seconds in one `write`. The buffer is bounded: when a stalled sink lets it fill, further lines are
dropped and counted, and the count is written as a line of its own once the sink drains — never
unbounded memory, never a blocked request.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import IO

import msgspec

from sidestep.server.types import Handler, Request, Response, StreamingResponse

__all__ = ["AccessLog", "open_sink"]

_HEADERS = {
    "x-sidestep-request-id": "id",
    "x-sidestep-provider": "provider",
    "x-sidestep-model": "model",
    "x-sidestep-attempts": "attempts",
}


_BATCH = 256  # lines per write when traffic is heavy (~1 ms of encoding)
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
        self._sink = sink
        self._owns_sink = owns_sink
        self._interval = interval
        self._max = max_lines
        self._lines: list[_Pending] = []
        self._dropped = 0
        self._timer: asyncio.Handle | None = None
        self._encode = msgspec.json.Encoder().encode

    async def handle(self, request: Request) -> Response | StreamingResponse:
        started = time.perf_counter()
        response = await self._handler(request)
        if len(self._lines) >= self._max:
            self._dropped += 1
            return response
        # A tuple of small values now (never the bodies); the dict and its JSON are built at flush time.
        client = request.client[0] if request.client is not None else None
        stream = isinstance(response, StreamingResponse)
        took = time.perf_counter() - started
        self._lines.append(
            (time.time(), took, request.method, request.path, response.status, stream, response.headers, client)
        )
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)
        elif len(self._lines) == _BATCH:  # busy: write now, in small batches, so no flush stalls the loop long
            self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_soon(self.flush)
        return response

    def flush(self) -> None:
        self._timer = None
        lines, self._lines = self._lines, []
        out = b"".join(self._encode(_line(*line)) + b"\n" for line in lines)
        if self._dropped:
            out += self._encode({"ts": round(time.time(), 3), "event": "access_log_dropped", "lines": self._dropped})
            out += b"\n"
            self._dropped = 0
        if out:
            try:
                self._sink.write(out)
                self._sink.flush()
            except OSError:
                pass  # a full disk must not take the gateway down; the lines are lost, requests are not

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.flush()
        if self._owns_sink:
            self._sink.close()


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
        "ts": round(ts, 3),
        "method": method,
        "path": path,
        "status": status,
        "ms": round(seconds * 1000, 3),  # to response headers, for streams
        "stream": stream,
    }
    for name, value in headers:
        field = _HEADERS.get(name)
        if field is not None:
            line[field] = value
    if client is not None:
        line["client"] = client
    return line


def open_sink(target: str) -> IO[bytes]:
    """`stderr`/`-` → the process's stderr; anything else is a file path, appended to."""
    if target in ("stderr", "-"):
        return os.fdopen(os.dup(2), "ab", buffering=0)
    return open(target, "ab")
