"""One client connection of the inbound HTTP/1.1 server: an `asyncio.Protocol` fed to `httptools` (llhttp).

It owns the connection: framing requests from the reads (keep-alive, pipelining, heads kept as bytes or
replayed, `Expect: 100-continue`, URL, header, trailer and body limits), refusing what it cannot trust
(answered, then closed with a linger), idle and slow-header timeouts, a client's half-close and the drain on
shutdown. What it parses goes to `queue`; the request-response cycle (`server.cycle`) answers it, and both
share the connection's flow control (`server.flow_control`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from sidestep.server.cycle import answer, head
from sidestep.server.flow_control import MAX_QUEUED, FlowControl
from sidestep.server.heads import Pairs, Replay, head_size, head_value, pair_value
from sidestep.server.types import Request

if TYPE_CHECKING:
    from sidestep.server.protocol import HttpServer

__all__ = ["Connection"]

log = logging.getLogger("sidestep.server")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_HEAD_KEEP = 16 * 1024  # a request keeps the read its head came in up to this size, else a copy of the head
_WINDOW_LIMIT = 256 * 1024  # reads kept for a possible replay; past this the connection parses with headers
_PROBE = 0.1  # seconds between checks whether a client that sent a FIN while its answer is pending is gone
_LINGER = 2.0  # seconds a refused client's further bytes are read and dropped before the connection closes


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _refusal(exc: httptools.HttpParserError) -> tuple[int, str]:
    """The answer to a parse that failed. A helper, not a local in the caller: a refusal raised in a callback
    holds frames through its traceback, and a caller's local holding it would make a cycle that keeps the
    connection alive until a full collection."""
    cause = exc.__cause__ or exc.__context__  # httptools wraps errors raised in callbacks
    if isinstance(cause, _Reject):
        return cause.status, cause.message
    return 400, f"Malformed HTTP request: {exc}"


class Connection(asyncio.Protocol):
    """One client connection. Parser callbacks fill `queue`; `cycle.answer` answers requests in order."""

    flow: FlowControl  # from connection_made on

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        # No `on_header`: heads are kept as bytes and split only when asked (`sidestep.server.heads`).
        self.parser = httptools.HttpRequestParser(self)
        self._window: list[bytes] = []  # reads since the last one that began between requests
        self._window_bytes = 0
        self._begun = 0  # requests begun in the window
        self._index = 0  # the current request's place in the window
        self._in_message = False
        self._replay: Replay | None = None  # the header-collecting parser, once a pipelined head needed it
        self.client: tuple[str, int] | None = None
        self.queue: deque[tuple[Request, bool]] = deque()
        # One answering task per connection, started with its first request and parked on `wakeup`
        # between requests: creating a task per request (and registering it with asyncio) cost more.
        self.task: asyncio.Task[None] | None = None
        self.wakeup: asyncio.Future[None] | None = None
        self.busy = False  # a request is being answered
        self.closed = False
        self._active = self.loop.time()  # last time this connection did something
        self.shutting_down = False
        self._eof = False  # the client half-closed: close once what it sent is answered
        self.streaming = False  # a streaming response's head is out: nothing else may go before its body
        self._pending_reject: tuple[int, str] | None = None
        self._rejected = False
        self._fed = 0  # size of the read being parsed
        self._head_pending = False  # a head whose body did not arrive with it: check it after parsing
        # Chunked bodies: the body size at the last chunk header (no body since: its trailers may follow),
        # and the bytes read since (what the header limit counts; the read holding the header is not).
        self._chunk_mark = -1
        self._trailer = 0
        self._linger: asyncio.TimerHandle | None = None  # the close after a refusal
        self._reset_message()

    def _reset_message(self) -> None:
        self._url = b""
        self._req_head: bytes | None = None  # bytes from the start of the request's head (it ends at a blank line)
        self._pairs: Pairs | None = None  # or its header pairs, where they came from a replay
        self._body: list[bytes] = []
        self._body_size = 0
        self._partial_head = 0
        self._in_head = False

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = self.transport.get_extra_info("peername")
        self.client = (peer[0], peer[1]) if isinstance(peer, tuple) and len(peer) >= 2 else None
        self.flow = FlowControl(self.transport, self.loop, self.limits.write_timeout, self._stalled)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.flow.lost()
        self.server.forget(self)
        if self.task is not None and not self.task.done():
            self.task.cancel()  # abandon upstream work for a client that left
        self._release()

    def _release(self) -> None:
        """Drop what a closed connection holds, and the cycles through it (the parser and a replay call back
        into it, the linger timer holds its method): reference counting frees it now, with up to
        `max_body_bytes` of reads of a refused body. Left to the cycle collector, that would wait for a full
        collection, which `sidestep serve` makes rare (`serve._tune_gc`): RSS grew with every refused body."""
        self.parser = httptools.HttpRequestParser(None)  # no callbacks: nothing feeds a closed connection
        if self._replay is not None:
            self._replay.close()
            self._replay = None
        self._window = []
        self.queue.clear()
        self._reset_message()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None

    def data_received(self, data: bytes) -> None:
        if self._rejected or self.closed:
            return
        try:
            self._fed = len(data)
            if self._replay is None:
                if not self._in_message:
                    self._window, self._begun, self._window_bytes = [data], 0, len(data)
                else:
                    self._window.append(data)
                    self._window_bytes += len(data)
                    if self._window_bytes > _WINDOW_LIMIT:  # a long body: stop holding its reads twice
                        self._replay = Replay(self._window)
            try:
                self.parser.feed_data(data)
            finally:
                if self._replay is not None and not self._replay.live:  # a replay began in this read
                    self._take_over(self._replay)
            if self._head_pending:
                self._check_head()
            if self._chunk_mark == self._body_size and self._in_message:  # trailers, or a chunk yet to come
                self._trailer += self._fed
                if self._trailer > self.limits.max_header_bytes:
                    raise _Reject(431, "The request's chunked trailers are too large.")
            if self._in_head:  # headers still incomplete: bound what the parser is buffering for us
                self._partial_head += len(data)
                if self._partial_head > self.limits.max_header_bytes:
                    raise _Reject(431, "The request headers are too large.")
        except _Reject as refused:
            self._reject(refused.status, refused.message)
        except httptools.HttpParserUpgrade:
            pass  # Upgrade requests are answered as ordinary requests; the upgrade is ignored
        except httptools.HttpParserError as exc:
            self._reject(*_refusal(exc))

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def _stalled(self) -> None:
        log.warning("client %s read nothing for %.0f s: connection closed", self.client, self.limits.write_timeout)
        self.abort()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # -- httptools callbacks ------------------------------------------------------------------------

    def _take_over(self, replay: Replay) -> None:
        """Parse with the replay from now on (it has read what `self.parser` has): no more windows."""
        self._window = []
        if replay.failed:  # malformed bytes ahead: `self.parser` is about to refuse them
            replay.close()
            self._replay = None
            return
        self.parser = replay.take_over(self)

    def on_message_begin(self) -> None:
        self._index, self._begun, self._in_message = self._begun, self._begun + 1, True
        self._chunk_mark = -1
        self._reset_message()
        self._in_head = True
        self._active = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.max_header_bytes:
            raise _Reject(414, "The request URL is too long.")

    def on_headers_complete(self) -> None:
        self._in_head = False
        replay = self._replay
        if replay is not None and replay.live:  # it parses now, collecting this head's pairs
            self._pairs = replay.current
        elif self._index == 0:  # the first request of the window: its head starts the window's bytes
            window = self._window
            head = window[0] if len(window) == 1 else b"".join(window)
            if len(head) > _HEAD_KEEP:  # a long body came with it: keep the head alone, not the whole read
                head = head.lstrip(b"\r\n")
                head = head[: head_size(head) + 4]
            self._req_head = head
        else:  # pipelined behind another in the window: where its head starts is not known
            if replay is None:
                replay = self._replay = Replay(self._window)
            self._pairs = replay.heads[self._index]
        # A head that arrived in one read was never counted by data_received: count it here, unless
        # everything received for it is below the limit anyway (the usual case, and then no loop).
        limit = self.limits.max_header_bytes
        if self._partial_head + self._fed > limit and self._head_size() > limit:
            raise _Reject(431, "The request headers are too large.")
        # Content-Length and Expect matter only for a body still to come: when the whole request came in
        # one read (the usual case) on_message_complete clears this before anything looks.
        self._head_pending = True

    def _check_head(self) -> None:
        """A head whose body is still to come: refuse a declared body over the limit before reading it,
        and answer `Expect: 100-continue`."""
        self._head_pending = False
        length, expect = self._head_value(b"content-length"), self._head_value(b"expect")  # what the server acts on
        if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
            self._reject(413, f"The request body is larger than the limit of {self.limits.max_body_bytes} bytes.")
            return
        if expect is not None and expect.lower() == b"100-continue" and self.transport is not None:
            self.transport.write(_CONTINUE)

    def _head_value(self, name: bytes) -> bytes | None:
        if self._pairs is None:
            return head_value(self._req_head or b"", name)
        return pair_value(self._pairs, name)

    def _head_size(self) -> int:
        if self._pairs is not None:
            return sum(len(n) + len(v) + 4 for n, v in self._pairs)
        return head_size(self._req_head or b"")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.limits.max_body_bytes:
            raise _Reject(413, f"The request body is larger than the limit of {self.limits.max_body_bytes} bytes.")
        self._body.append(body)

    def on_chunk_header(self) -> None:
        self._chunk_mark, self._trailer = self._body_size, -self._fed

    def on_message_complete(self) -> None:
        self._head_pending = self._in_message = False
        url = self._url.decode("latin-1")
        path, _, query = url.partition("?")
        version = self.parser.get_http_version()
        request = Request(
            method=self.parser.get_method().decode("ascii"),
            path=path,
            query=query,
            headers=None,
            raw_headers=self._pairs,
            raw_head=self._req_head,
            body=b"".join(self._body) if len(self._body) != 1 else self._body[0],
            client=self.client,
            http_version=version,
        )
        self.queue.append((request, self.parser.should_keep_alive()))
        self._reset_message()
        if len(self.queue) >= MAX_QUEUED and self.transport is not None:
            self.flow.pause_reading()
        if self.task is None:
            self.task = self.loop.create_task(answer(self))
        elif self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    # -- connection lifecycle -------------------------------------------------------------------------

    def idle(self) -> bool:
        """Every queued request is answered: stamp the time, then act on what waited for this moment.
        False when that closed the connection."""
        self.busy = False
        self._active = self.loop.time()
        if self._pending_reject is not None:
            self._reject(*self._pending_reject)
        elif self.shutting_down or self._eof:
            self.close()
        return not self.closed

    def _path(self) -> str:
        return self._url.partition(b"?")[0].decode("latin-1")

    def _reject(self, status: int, message: str) -> None:
        """Answer a request the parser refused, then close: the stream position is no longer trustworthy.
        Earlier pipelined requests are answered first, so responses stay in order."""
        self._rejected = True
        if self.busy or self.queue:
            self._pending_reject = (status, message)
            if self.transport is not None:
                self.transport.pause_reading()
            return
        self._pending_reject = None
        response = self.server.render(status, message, self._path())
        if self.transport is not None and not self.closed:
            data = head(status, response.headers, b"content-length: %d\r\n" % len(response.body), False)
            self.transport.write(bytes(data) + response.body)
        self._close_lingering()

    def _close_lingering(self) -> None:
        """Close after a refusal. Closing a socket with unread bytes sends a reset, which can destroy the
        refusal before the client reads it (a client still sending a large body or trailers): half-close
        instead, drop what it still sends, and close when it does, or after _LINGER seconds."""
        transport = self.transport
        if transport is None or self.closed or not transport.can_write_eof():
            self.close()
            return
        transport.write_eof()
        transport.resume_reading()
        self._linger = self.loop.call_later(_LINGER, self.close)

    def sweep(self, now: float) -> None:
        """Close the connection if it idles past keep-alive, or a request's headers are too slow."""
        if self.busy or self.queue or self.closed:
            return
        limit = self.limits.header_timeout if self._in_head else self.limits.keepalive_timeout
        if now - self._active > limit:
            self.close()

    def shutdown(self, grace: float = 0.0) -> None:
        """Close after the request in hand (its response says `Connection: close`); an idle connection at
        once, or after `grace` seconds if no request began on it meanwhile."""
        self.shutting_down = True
        if self.busy or self.queue:
            return
        if grace > 0:
            self.loop.call_later(grace, self._close_if_idle)
        else:
            self.close()

    def _close_if_idle(self) -> None:
        if not (self.busy or self.queue or self._in_message):
            self.close()

    def eof_received(self) -> bool | None:
        """The client half-closed (SHUT_WR): no request follows, but those it sent are answered before the
        close. None (close now) when nothing is left to answer, or a request was cut short."""
        busy = self.busy or self.queue
        if self._rejected or self.closed or self._in_message or self.streaming or not busy or self.transport is None:
            return None  # a streaming answer's own writes would find a gone client; a silent stream must not wait
        if self.parser.get_http_version() == "1.0":
            return None
        # A FIN is a half-close or a full close; only a write tells them apart. An interim response (which
        # HTTP/1.1 clients must skip) draws a reset from a client that is gone, seen on the socket shortly.
        self._eof = True
        self.transport.write(_CONTINUE)
        self.loop.call_later(_PROBE, self._probe)
        return True

    def _probe(self) -> None:
        """After the interim response: a reset means the client is gone (abandon its work, as a close would)."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if self.closed or sock is None or not (self.busy or self.queue):
            return
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self.abort()  # its connection_lost cancels the handler
        else:
            self.loop.call_later(_PROBE, self._probe)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()
