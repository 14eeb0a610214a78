"""The request-response cycle of a connection: its parsed requests answered in order, one at a time.

For each request the handler runs, and its response is written in one piece, or streamed: chunk-framed
(HTTP/1.1) or close-delimited (HTTP/1.0), from an async iterator that waits on the connection's flow control,
or from a piped body that writes itself through an `Outlet`. Whether the connection stays open is decided
after the handler: a stop that began meanwhile makes the response say `Connection: close`. The connection
(`server.connection`) parses and owns keep-alive, half-close and the drain.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from sidestep.log import safe
from sidestep.server.flow_control import MAX_QUEUED
from sidestep.server.heads import sendable
from sidestep.server.types import AbortConnection, Request, Response, StreamingResponse

if TYPE_CHECKING:
    from sidestep.server.connection import Connection

__all__ = ["Outlet", "answer", "head"]

log = logging.getLogger("sidestep.server")

_STATUS_LINES = {
    int(s): f"HTTP/1.1 {int(s)} {s.phrase}\r\n".encode("latin-1") for s in http.HTTPStatus
}  # built once; read-only


# -- the cycle ----------------------------------------------------------------------------------------


async def answer(conn: Connection) -> None:
    """Answer queued requests in order, one at a time; park while the queue is empty. One task per
    connection, started with its first request: creating a task per request cost more."""
    try:
        while not conn.closed:
            if not conn.queue:
                if not conn.idle():
                    return
                conn.wakeup = conn.loop.create_future()
                await conn.wakeup
                continue
            conn.busy = True
            request, keep_alive = conn.queue.popleft()
            if conn.flow.read_paused and len(conn.queue) < MAX_QUEUED // 2:
                conn.flow.resume_reading()
            try:  # the handler is awaited here, not in a helper: every await level costs per resume
                response = await conn.server.handler(request)
            except AbortConnection:
                conn.abort()
                return
            except Exception:
                log.exception("handler failed for %s %s", request.method, safe(request.path))
                response = conn.server.render(500, "Internal server error.", request.path)
            keep_alive = keep_alive and not conn.shutting_down and not conn.server.closing  # a stop meanwhile too
            if conn.transport is None or conn.transport.is_closing():  # the client left meanwhile
                if isinstance(response, StreamingResponse):
                    await _finish(response, False)
                return
            if isinstance(response, StreamingResponse):
                keep_alive = await _stream(conn, request, response, keep_alive)
            else:
                _write_response(conn, request, response, keep_alive)
            if not keep_alive:
                conn.close()
                return
    except asyncio.CancelledError:
        return  # the client went away
    finally:
        conn.task = conn.wakeup = None
        conn.busy = False


# -- writing a response -------------------------------------------------------------------------------


def head(status: int, headers: list[tuple[str, str]], extra: bytes, keep_alive: bool) -> bytes:
    status_line = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n".encode()
    # One C-level join per header, one encode for all: no Python bytecode per header line.
    lines = b""
    if headers:
        text = "\r\n".join(map(": ".join, headers)) + "\r\n"
        # A line break inside a header would split the response (an LF is one for every parser: a CR/LF pair
        # or a bare LF; llhttp, Go and hyper refuse a bare CR); a character past Latin-1 cannot be sent.
        # isascii() is a flag, one count is a scan: two counts cost 1 % of a request.
        if not text.isascii() or text.count("\n") != len(headers):
            text = sendable(headers)
        lines = text.encode("latin-1")
    return b"".join((status_line, lines, extra, b"\r\n" if keep_alive else b"connection: close\r\n\r\n"))


def _write_response(conn: Connection, request: Request, response: Response, keep_alive: bool) -> None:
    body = response.body
    data = head(response.status, response.headers, b"content-length: %d\r\n" % len(body), keep_alive)
    if request.method != "HEAD" and body:
        data += body
    assert conn.transport is not None
    conn.transport.write(data)


# -- streaming ----------------------------------------------------------------------------------------


async def _stream(conn: Connection, request: Request, response: StreamingResponse, keep_alive: bool) -> bool:
    chunked = request.http_version != "1.0"
    keep_alive = keep_alive and chunked
    extra = b"transfer-encoding: chunked\r\n" if chunked else b""
    assert conn.transport is not None
    data = head(response.status, response.headers, extra, keep_alive)
    prelude = response.prelude
    if prelude and request.method != "HEAD":
        data += b"%x\r\n%b\r\n" % (len(prelude), prelude) if chunked else prelude
    conn.transport.write(data)
    body, pipe = response.body, response.pipe  # a body that writes itself: no await per piece
    complete = False
    conn.streaming = True
    try:
        if request.method != "HEAD" and pipe is not None:
            try:
                await pipe(Outlet(conn, chunked))
            finally:
                conn.flow.on_resume = None
        elif request.method != "HEAD":
            await _pump(conn, body, chunked)
        complete = not conn.closed
    except AbortConnection:
        conn.abort()
        return False
    except (ConnectionError, asyncio.CancelledError):
        return False
    except Exception:
        log.exception("stream failed for %s %s", request.method, safe(request.path))
        conn.abort()
        return False
    finally:
        conn.streaming = False
        await _finish(response, complete)
    if chunked and not conn.closed:
        conn.transport.write(b"0\r\n\r\n")
    return keep_alive and not conn.closed


async def _pump(conn: Connection, body: AsyncIterator[bytes], chunked: bool) -> None:
    write = conn.transport.write if conn.transport is not None else None
    assert write is not None
    flow = conn.flow
    async for piece in body:
        if conn.closed:
            raise ConnectionResetError("client disconnected")
        if not piece:
            continue
        write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
        if flow.write_paused:
            await flow.drain()


class Outlet:
    """The `Outlet` a piped body writes through: straight to the transport, chunk-framed."""

    __slots__ = ("_chunked", "_conn", "_write")

    def __init__(self, conn: Connection, chunked: bool) -> None:
        assert conn.transport is not None
        self._conn = conn
        self._chunked = chunked
        self._write = conn.transport.write

    def write(self, piece: bytes) -> None:
        if piece and not self._conn.closed:
            self._write(b"%x\r\n%b\r\n" % (len(piece), piece) if self._chunked else piece)

    @property
    def paused(self) -> bool:
        return self._conn.flow.write_paused

    def on_resume(self, callback: Callable[[], None] | None) -> None:
        self._conn.flow.on_resume = callback

    async def drain(self) -> None:
        if self._conn.closed:
            raise ConnectionResetError("client disconnected")
        if self._conn.flow.write_paused:
            await self._conn.flow.drain()


async def _finish(response: StreamingResponse, complete: bool) -> None:
    """Close a streaming body (whether or not it was ever started), then tell its owner it is over and
    whether all of it reached the client."""
    closer = getattr(response.body, "aclose", None)
    if closer is not None:
        try:
            await closer()
        except Exception:
            log.exception("closing a stream body failed")
    done, response.on_done = response.on_done, None
    if done is not None:
        try:
            done(complete)
        except Exception:
            log.exception("a stream's on_done callback failed")
