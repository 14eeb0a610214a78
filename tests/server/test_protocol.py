"""The HTTP/1.1 server, byte-exact over raw sockets: framing, keep-alive, pipelining, limits, streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sidestep.server.protocol import HttpServer, ServerLimits, start_server
from sidestep.server.types import AbortConnection, Request, Response, StreamingResponse

Seen = list[Request]


def make_handler(seen: Seen, closed: list[str]) -> object:
    async def handler(request: Request) -> Response | StreamingResponse:
        seen.append(request)
        if request.path == "/stream":

            async def body() -> AsyncIterator[bytes]:
                try:
                    for i in range(3):
                        yield b"data: %d\n\n" % i
                        await asyncio.sleep(0.01 if request.query == "slow" else 0)
                    if request.query == "abort":
                        raise AbortConnection
                    if request.query == "forever":
                        await asyncio.sleep(30)
                finally:
                    closed.append("body closed")

            return StreamingResponse(200, body(), [("content-type", "text/event-stream")])
        if request.path == "/abort":
            raise AbortConnection
        if request.path == "/boom":
            raise RuntimeError("handler bug")
        if request.path == "/slow":
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                closed.append("handler cancelled")
                raise
        return Response(200, b"echo:" + request.body, [("content-type", "text/plain")])

    return handler


@pytest.fixture
async def server() -> AsyncIterator[tuple[HttpServer, Seen, list[str]]]:
    seen: Seen = []
    closed: list[str] = []
    limits = ServerLimits(max_body_bytes=100, max_header_bytes=1024, keepalive_timeout=0.3, header_timeout=0.3)
    srv = await start_server(make_handler(seen, closed), limits=limits)  # type: ignore[arg-type]
    yield srv, seen, closed
    await srv.close()


async def exchange(port: int, data: bytes, *, wait: float = 0.2) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = b""
    try:
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                out += chunk
    except TimeoutError:
        pass
    writer.close()
    await writer.wait_closed()
    return out


async def test_keepalive_and_pipelining_answer_in_order(server: tuple[HttpServer, Seen, list[str]]) -> None:
    srv, seen, _ = server
    requests = b"".join(b"POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d" % (i, i) for i in range(5))
    out = await exchange(srv.port, requests)
    assert out.count(b"HTTP/1.1 200 OK") == 5
    assert [r.path for r in seen] == ["/0", "/1", "/2", "/3", "/4"]
    bodies = [part.split(b"\r\n\r\n", 1)[1][:6] for part in out.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"echo:0", b"echo:1", b"echo:2", b"echo:3", b"echo:4"]


async def test_request_parts_reach_the_handler(server: tuple[HttpServer, Seen, list[str]]) -> None:
    srv, seen, _ = server
    await exchange(
        srv.port, b"POST /p/a?x=1&y=2 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 3\r\n\r\nabc"
    )
    request = seen[0]
    assert (request.method, request.path, request.query, request.body) == ("POST", "/p/a", "x=1&y=2", b"abc")
    assert request.headers["x-a"] == "1, 2"
    assert request.client is not None


async def test_chunked_request_body(server: tuple[HttpServer, Seen, list[str]]) -> None:
    srv, seen, _ = server
    out = await exchange(
        srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    assert seen[0].body == b"abcde"
    assert out.endswith(b"echo:abcde")


async def test_connection_close_and_http10(server: tuple[HttpServer, Seen, list[str]]) -> None:
    srv, _, _ = server
    out = await exchange(
        srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\n\r\n"
    )
    assert out.count(b"HTTP/1.1 200") == 1
    assert b"connection: close" in out
    out = await exchange(srv.port, b"GET / HTTP/1.0\r\n\r\n")
    assert b"connection: close" in out


async def test_expect_100_continue_then_body(server: tuple[HttpServer, Seen, list[str]]) -> None:
    srv, _, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hi")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert await reader.readexactly(7) == b"echo:hi"
    writer.close()
    await writer.wait_closed()


async def test_body_over_the_limit_is_413_and_closes(server: tuple[HttpServer, Seen, list[str]]) -> None:
    srv, seen, _ = server
    out = await exchange(srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + b"a" * 101)
    assert out.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in out
    chunk = b"40\r\n" + b"a" * 64 + b"\r\n"
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    out = await exchange(srv.port, head + chunk + chunk + b"0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ")
    assert seen == []
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\nExpect: 100-continue\r\n\r\n")
    assert (await reader.read(100)).startswith(b"HTTP/1.1 413 ")  # no 100 Continue for an oversized body
    writer.close()
    await writer.wait_closed()


async def test_oversized_headers_431_and_malformed_400(server: tuple[HttpServer, Seen, list[str]]) -> None:
    srv, _, _ = server
    out = await exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 ")
    out = await exchange(srv.port, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 2000)  # headers never finish
    assert out.startswith(b"HTTP/1.1 431 ")
    out = await exchange(srv.port, b"NOT HTTP AT ALL\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")


async def test_head_has_no_body(server: tuple[HttpServer, Seen, list[str]]) -> None:
    srv, _, _ = server
    out = await exchange(srv.port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"content-length: 5" in out
    assert out.endswith(b"\r\n\r\n")


async def test_streaming_response_is_chunked_and_unbuffered(server: tuple[HttpServer, Seen, list[str]]) -> None:
    srv, _, closed = server
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /stream?slow HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head
    first = b"9\r\ndata: 0\n\n\r\n"
    assert await reader.readexactly(len(first)) == first  # arrives before the stream ends
    rest = await reader.readuntil(b"0\r\n\r\n")
    assert rest == b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"
    writer.close()
    await writer.wait_closed()
    assert closed == ["body closed"]


async def test_client_disconnect_closes_the_stream_and_cancels_the_handler(
    server: tuple[HttpServer, Seen, list[str]],
) -> None:
    srv, _, closed = server
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /stream?forever HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"data: 2")
    writer.close()
    await writer.wait_closed()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.05)
    writer.close()
    await writer.wait_closed()
    for _ in range(50):
        if len(closed) == 2:
            break
        await asyncio.sleep(0.01)
    assert sorted(closed) == ["body closed", "handler cancelled"]


async def test_abort_resets_and_handler_errors_are_500(server: tuple[HttpServer, Seen, list[str]]) -> None:
    srv, _, _ = server
    assert await exchange(srv.port, b"GET /abort HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    out = await exchange(srv.port, b"GET /stream?abort HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"data: 2" in out
    assert not out.endswith(b"0\r\n\r\n")  # cut, no final chunk
    out = await exchange(srv.port, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500 ")


async def test_idle_keepalive_connection_is_closed(server: tuple[HttpServer, Seen, list[str]]) -> None:
    srv, _, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"echo:")
    async with asyncio.timeout(2):
        assert await reader.read() == b""  # closed by the server after keepalive_timeout (0.3 s)
    writer.close()
    await writer.wait_closed()


async def test_graceful_close_finishes_in_flight_requests() -> None:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.2)
        return Response(200, b"done")

    srv = await start_server(slow)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.05)
    await srv.close()
    assert (await reader.read()).endswith(b"done")
    writer.close()
    await writer.wait_closed()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", srv.port)


async def test_headers_reach_the_handler_however_requests_are_framed_and_split(
    server: tuple[HttpServer, Seen, list[str]],
) -> None:
    """Pipelined requests in one read, a body that ends in the same read as the next request begins, a
    chunked body, a head split across reads: every request sees exactly its own headers and body, in order."""
    srv, seen, _ = server
    _reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(
        b"POST /a HTTP/1.1\r\nHost: x\r\nX-Id: 1\r\nContent-Length: 2\r\n\r\nhi"  # whole
        b"GET /b HTTP/1.1\r\nHost: x\r\nX-Id: 2\r\nX-Twice: one\r\nx-twice: two\r\n\r\n"  # pipelined, same read
        b"POST /c HTTP/1.1\r\nHost: x\r\nX-Id: 3\r\nContent-Length: 5\r\n\r\nab"  # body continues below
    )
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(
        b"cde" + b"POST /d HTTP/1.1\r\nHost: x\r\nX-Id: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
    )
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nX-Id: 5\r\nCont")  # a head split across reads
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b"ent-Length: 1\r\n\r\n!GET /f HTTP/1.1\r\nHost: x\r\nX-Content-Length: 9\r\nX-Id: 6\r\n\r\n")
    await writer.drain()
    for _ in range(50):
        if len(seen) == 6:
            break
        await asyncio.sleep(0.02)
    writer.close()
    await writer.wait_closed()
    assert [(r.path, r.body, r.headers["x-id"]) for r in seen] == [
        ("/a", b"hi", "1"),
        ("/b", b"", "2"),
        ("/c", b"abcde", "3"),
        ("/d", b"xyz", "4"),
        ("/e", b"!", "5"),
        ("/f", b"", "6"),
    ]
    assert seen[1].headers["x-twice"] == "one, two"  # repeated names joined
    assert seen[2].headers == {"host": "x", "x-id": "3", "content-length": "5"}
    assert seen[5].headers["x-content-length"] == "9"


async def test_a_client_that_stops_reading_is_cut_off_after_the_write_timeout() -> None:
    finished: list[str] = []

    async def endless(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"x" * 65536
                    await asyncio.sleep(0)
            finally:
                finished.append("body closed")

        return StreamingResponse(200, body(), [("content-type", "text/event-stream")])

    srv = await start_server(endless, limits=ServerLimits(write_timeout=0.3))
    _reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, limit=1024)
    writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(1.0)  # read nothing: buffers fill, the server pauses, then gives up
    assert finished == ["body closed"]  # the producer (an upstream, in the gateway) was released
    assert not srv.connections
    writer.close()
    await srv.close()


async def test_headers_of_requests_that_each_come_alone_however_split(
    server: tuple[HttpServer, Seen, list[str]],
) -> None:
    """No pipelining: every head is read from the bytes it arrived in (the fast path), also when it is split
    across reads, preceded by an empty line, or sent twice under names that differ in case."""
    srv, seen, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    parts = [
        [b"POST /a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer one\r\nContent-Length: 2\r\n\r\nhi"],
        [b"\r\nGET /b HTTP/1.1\r\nHo", b"st: y\r\nx-api-key: k2\r\nX-API-KEY: k3\r", b"\n\r\n"],
        [b"POST /c HTTP/1.1\r\nHost: z\r\nContent-Length: 3\r\n\r\n", b"abc"],
    ]
    for pieces in parts:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)
        await reader.readuntil(b"\r\n\r\n")  # the answer's head: the next request comes alone
        await asyncio.sleep(0.02)
    writer.close()
    await writer.wait_closed()
    a, b, c = seen
    assert (a.header("authorization"), a.header("host"), a.body) == ("Bearer one", "x", b"hi")
    assert (b.header("x-api-key"), b.header("host"), b.header("authorization")) == ("k2", "y", None)
    assert b.headers == {"host": "y", "x-api-key": "k2, k3"}
    assert (c.path, c.body, c.headers) == ("/c", b"abc", {"host": "z", "content-length": "3"})


async def test_a_long_body_is_not_held_twice_and_later_heads_still_arrive() -> None:
    """Past 256 KiB of reads in one request the server stops keeping them for a possible replay: it parses
    with headers from there on, and the requests after the long one still see their own headers."""
    seen: Seen = []
    srv = await start_server(make_handler(seen, []), limits=ServerLimits(max_body_bytes=1 << 20))  # type: ignore[arg-type]
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        body = b"x" * 400_000
        writer.write(b"POST /long HTTP/1.1\r\nHost: x\r\nX-Id: 1\r\nContent-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), 50_000):
            writer.write(body[start : start + 50_000])
            await writer.drain()
            await asyncio.sleep(0.005)
        (conn,) = srv.connections
        assert not conn._window  # the long request's reads are no longer kept
        writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\nX-Id: 2\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"GET /last HTTP/1.1\r\nHost: x\r\nX-Id: 3\r\n\r\n")
        await writer.drain()
        for _ in range(50):
            if len(seen) == 3:
                break
            await asyncio.sleep(0.02)
        writer.close()
        await writer.wait_closed()
    finally:
        await srv.close()
    assert [(r.path, len(r.body), r.header("x-id")) for r in seen] == [
        ("/long", 400_000, "1"),
        ("/next", 0, "2"),
        ("/last", 0, "3"),
    ]


async def test_a_request_keeps_its_head_not_the_read_its_long_body_came_in() -> None:
    seen: Seen = []
    srv = await start_server(make_handler(seen, []), limits=ServerLimits(max_body_bytes=1 << 20))  # type: ignore[arg-type]
    try:
        head = b"POST /big HTTP/1.1\r\nHost: x\r\nX-Id: 7\r\nContent-Length: 40000\r\n\r\n"
        answer = await exchange(srv.port, head + b"y" * 40_000)
    finally:
        await srv.close()
    assert answer.startswith(b"HTTP/1.1 200")
    (request,) = seen
    assert (request.header("x-id"), len(request.body)) == ("7", 40_000)
    assert request._head == head  # what stays alive while the answer streams: the head, not 40 kB more


async def test_a_pipelined_request_is_refused_for_what_its_own_head_says(
    server: tuple[HttpServer, Seen, list[str]],
) -> None:
    """Behind another request in the same read, a head is known only through the replay: its limits hold
    there too (431 for its headers, 413 for a declared body before it is sent), and malformed bytes after
    valid pipelined requests are refused only after those are answered."""
    srv, seen, _ = server
    first = b"GET /a HTTP/1.1\r\nHost: x\r\nX-Id: 1\r\n\r\n"
    out = await exchange(srv.port, first + b"GET /b HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 431 " in out
    out = await exchange(srv.port, first + b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 413 " in out
    second = b"GET /d HTTP/1.1\r\nHost: x\r\nX-Id: 2\r\n\r\n"
    out = await exchange(srv.port, first + second + b"NOT HTTP AT ALL\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 ") == 2 and b"HTTP/1.1 400 " in out
    assert [(r.path, r.header("x-id")) for r in seen] == [("/a", "1"), ("/a", "1"), ("/a", "1"), ("/d", "2")]
