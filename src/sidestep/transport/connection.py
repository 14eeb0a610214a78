"""One upstream HTTP/1.1 connection: an asyncio protocol with an `httptools` response parser.

A connection carries one request at a time. The response's status and headers resolve a future; body
pieces are queued as they arrive and handed to the reader without buffering until the end (SSE depends
on it). Reading pauses the socket when the reader falls behind.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import cast

import httptools

from sidestep.headers import header_dict

__all__ = ["Connection"]


def _framed(raw: list[tuple[bytes, bytes]]) -> bool:
    """Whether the body has a length or is chunked (otherwise it runs until the connection closes)."""
    for name, value in raw:
        if len(name) == 14 and name.lower() == b"content-length":
            return True
        if len(name) == 17 and name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            return True
    return False


def _final_head_pairs(data: bytes) -> list[tuple[bytes, bytes]]:
    """The header pairs of the final response head at the start of `data` (interim 1xx heads skipped).
    httptools has already validated the bytes; this only splits them."""
    start = 0
    while True:
        end = data.find(b"\r\n\r\n", start)
        head = data[start : len(data) if end < 0 else end]
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if end >= 0 and len(parts) > 1 and parts[1][:1] == b"1":  # 100 Continue, 103 Early Hints …
            start = end + 4
            continue
        pairs: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t") and pairs:  # obsolete line folding: part of the previous value
                name, value = pairs[-1]
                pairs[-1] = (name, value + b" " + line.strip())
                continue
            name, _, value = line.partition(b":")
            pairs.append((name.strip(), value.strip()))
        return pairs


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
        future.exception()  # retrieved here: the waiter may be gone by the time it fires


_HIGH_WATER = 64  # queued body pieces before the socket stops being read


class Connection(asyncio.Protocol):
    def __init__(self, origin: tuple[str, str, int]) -> None:
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.used = False  # has carried a request before (a reused keep-alive connection)
        self.got_bytes = False  # any response byte for the current request
        self._parser = httptools.HttpResponseParser(self)
        self._headers_ready: asyncio.Future[None] | None = None
        self._status = 0
        # The response head is kept as the bytes it came in and parsed only if something asks for a
        # header: no per-header parser callback (a provider sends 15-20 headers, the success path reads
        # none), which saves ~4 µs of CPU per request.
        self._head: list[bytes] = []  # reads that arrived while the head was incomplete
        self._in_head = False
        self._headers: dict[str, str] | None = None
        self._pieces: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None  # the reader waiting for body bytes
        self._guarded: asyncio.Future[None] | None = None  # the wait the watchdog may expire
        self._expires_at: float | None = None  # when that wait times out
        self._watchdog: asyncio.TimerHandle | None = None
        self._watch_at = 0.0
        self._complete = False
        self._error: Exception | None = None
        self._paused = False
        self._tunnel: asyncio.Future[bytes] | None = None
        self._tunnel_buffer = b""
        self._interim = False
        self._head_only = False
        self._keep = False
        self._bodied = False  # the response has a body (a close-delimited one ends at EOF)
        self._sink: Callable[[bytes], None] | None = None  # piped: body pieces go here as they arrive
        self._piped: asyncio.Future[None] | None = None  # resolved at the end of a piped body
        self._idle: float | None = None  # a piped body's idle timeout

    # -- request lifecycle --------------------------------------------------------------------------

    def begin(self, payload: bytes, head_only: bool) -> asyncio.Future[None]:
        """Send a whole request; return a future resolved when the response headers are in."""
        if self._head_only or not self._complete:  # a parser is reusable only after a whole, bodied message
            self._parser = httptools.HttpResponseParser(self)
        self._status = 0
        self._head = []
        self._in_head = True
        self._headers = None
        self._pieces.clear()
        self._complete = False
        self._error = None
        self._bodied = False
        self._sink = self._piped = None
        self.got_bytes = False
        self._head_only = head_only
        self._headers_ready = self.loop.create_future()
        assert self.transport is not None
        self.transport.write(payload)
        return self._headers_ready

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased names; decoded on first use (a provider sends 15-20, the success path reads none)."""
        if self._headers is None:
            self._headers = header_dict(self._header_pairs())
        return self._headers

    def _header_pairs(self) -> list[tuple[bytes, bytes]]:
        return _final_head_pairs(b"".join(self._head)) if self._status else []

    @property
    def complete(self) -> bool:
        return self._complete

    @property
    def keep_alive(self) -> bool:
        return self._complete and not self.closed and self._keep

    async def next_piece(self, timeout: float | None) -> bytes | None:
        """The next body piece, or None at the end of the body. Raises when the connection failed, and
        TimeoutError when nothing arrives for `timeout` seconds."""
        while True:
            if self._pieces:
                piece = self._pieces.popleft()
                if self._paused and len(self._pieces) < _HIGH_WATER // 2 and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return piece
            if self._complete:
                return None
            if self._error is not None:
                raise self._error
            waiter = self._waiter = self.loop.create_future()
            if timeout is not None:
                self.guard(waiter, timeout)
            try:
                await waiter
            finally:
                self._waiter = None
                self._guarded = None

    def guard(self, future: asyncio.Future[None], timeout: float) -> None:
        """Fail `future` with TimeoutError unless it is done within `timeout` seconds (the caller clears
        `unguard()` after the wait). One lazily re-armed watchdog per connection instead of a timer per
        wait: every request's headers wait and every chunk of a stream would otherwise create and cancel
        a timer."""
        expires_at = self._expires_at = self.loop.time() + timeout
        self._guarded = future
        if self._watchdog is not None and self._watch_at > expires_at:  # a shorter wait than armed for
            self._watchdog.cancel()
            self._watchdog = None
        if self._watchdog is None:
            self._watch_at = expires_at
            self._watchdog = self.loop.call_at(expires_at, self._watch)

    def unguard(self) -> None:
        self._guarded = None

    def pipe(self, sink: Callable[[bytes], None], timeout: float | None) -> asyncio.Future[None]:
        """Hand every body piece to `sink` from the read callback as it arrives (queued ones first). The
        future resolves at the end of the body, or fails as `next_piece` would (error, `timeout` of
        silence). No future, task switch or coroutine resumption per piece: a long stream's relay cost."""
        done: asyncio.Future[None] = self.loop.create_future()
        while self._pieces:
            sink(self._pieces.popleft())
        if self._complete:
            done.set_result(None)
        elif self._error is not None:
            done.set_exception(self._error)
        else:
            self._sink, self._piped, self._idle = sink, done, timeout
            self.resume_reading()
            if timeout is not None:
                self.guard(done, timeout)
        return done

    def unpipe(self) -> None:
        self._sink = self._piped = None
        self._guarded = None

    def pause_reading(self) -> None:
        """The piped body's reader is full (a slow client): stop reading, and stop the idle clock."""
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
            self._expires_at = None

    def resume_reading(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
            if self._piped is not None and self._idle is not None:
                self.guard(self._piped, self._idle)

    def take_body(self) -> bytes:
        """Every buffered body piece at once (the caller checked `complete`)."""
        pieces = self._pieces
        if not pieces:
            return b""
        body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        return body

    def close(self) -> None:
        self._disarm()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        self._disarm()
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- proxy tunnel (CONNECT) -----------------------------------------------------------------------

    def start_tunnel(self, request: bytes) -> asyncio.Future[bytes]:
        """Send CONNECT; the future resolves with the proxy's response head (status line and headers)."""
        self._tunnel = self.loop.create_future()
        assert self.transport is not None
        self.transport.write(request)
        return self._tunnel

    # -- asyncio.Protocol -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None and not self._tunnel.done():
            self._tunnel_buffer += data
            end = self._tunnel_buffer.find(b"\r\n\r\n")
            if end >= 0:
                self._tunnel.set_result(self._tunnel_buffer[: end + 4])
            return
        self.got_bytes = True
        if self._in_head:
            self._head.append(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP response: {exc}"))
            self.abort()
        if len(self._pieces) >= _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self._finish_at_eof()
        return None

    def _finish_at_eof(self) -> None:
        # Whether the body is close-delimited is asked only here, at EOF: not scanning a provider's
        # 15-20 headers for framing on every response saves that loop on the hot path.
        if self._bodied and not self._complete and not _framed(self._header_pairs()):
            self._complete = True
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._disarm()
        if exc is None:
            self._finish_at_eof()
        if self._tunnel is not None and not self._tunnel.done():
            self._tunnel.set_exception(ConnectionError("the proxy closed the connection during CONNECT"))
        if not self._complete:
            reason = exc or ConnectionResetError("the upstream closed the connection")
            self._fail(reason if isinstance(reason, Exception) else ConnectionError(str(reason)))

    # -- httptools callbacks --------------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # interim response: wait for the real one
            self._interim = True
            return
        self._in_head = False
        self._status = status
        # Captured now: httptools stops answering should_keep_alive() once the message completes.
        self._keep = self._parser.should_keep_alive()
        self._bodied = not self._head_only and status not in (204, 304)
        ready = self._headers_ready
        if ready is not None and not ready.done():
            ready.set_result(None)
        if self._head_only or status in (204, 304):
            self._complete = True

    def on_body(self, body: bytes) -> None:
        sink = self._sink
        if sink is not None:
            sink(body)
            if self._idle is not None and not self._paused:
                self._expires_at = self.loop.time() + self._idle  # the watchdog re-arms itself lazily
            return
        self._pieces.append(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._complete = True
        self._wake()

    def _watch(self) -> None:
        """The watchdog fired: expire the waiting reader if its deadline passed, else sleep until it."""
        self._watchdog = None
        expires_at, waiter = self._expires_at, self._guarded
        if expires_at is None or waiter is None or waiter.done():
            return  # nobody is waiting now; the next wait re-arms the watchdog
        if self.loop.time() >= expires_at:
            _expire(waiter)
        else:
            self._watch_at = expires_at
            self._watchdog = self.loop.call_at(expires_at, self._watch)

    def _disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        piped = self._piped
        if piped is not None and self._complete and not piped.done():
            piped.set_result(None)

    def _fail(self, exc: Exception) -> None:
        self._error = exc
        ready = self._headers_ready
        if ready is not None and not ready.done():
            ready.set_exception(exc)
            ready.exception()  # mark retrieved: the sender may already have given up on it
        piped = self._piped
        if piped is not None and not piped.done():
            piped.set_exception(exc)
        self._wake()
