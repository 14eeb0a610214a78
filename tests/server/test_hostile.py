"""The HTTP server against hostile and unlucky clients, over raw sockets on loopback: chunked trailers,
half-closed connections, and shutdown while keep-alive clients keep sending."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sidestep.config.load import parse_config
from sidestep.errors import ConfigError
from sidestep.server.protocol import HttpServer, ServerLimits, start_server
from sidestep.server.types import Request, Response

HEAD = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


async def echo_auth(request: Request) -> Response:
    if request.path == "/slow":
        await asyncio.sleep(0.3)
    return Response(200, b"auth=%s body=%s" % ((request.header("authorization") or "-").encode(), request.body))


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    limits = ServerLimits(max_body_bytes=1 << 20, max_header_bytes=1024, shutdown_timeout=5.0)
    srv = await start_server(echo_auth, limits=limits)
    yield srv
    await srv.close()


async def talk(port: int, *pieces: bytes, pause: float = 0.0, wait: float = 3.0) -> bytes:
    """Send `pieces` (pausing between them), then read until the server closes or `wait` passes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(pause)
    except ConnectionError:
        pass
    out = b""
    try:
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                out += chunk
    except TimeoutError:
        pass
    writer.close()
    return out


async def test_trailers_past_the_header_limit_are_refused_431(server: HttpServer) -> None:
    trailers = b"X-Pad: aaaaaaaaaa\r\n" * 2000  # 38 kB of short trailer lines, in reads of 1 kB
    pieces = [HEAD + b"2\r\n{}\r\n0\r\n"] + [trailers[i : i + 1024] for i in range(0, len(trailers), 1024)]
    out = await talk(server.port, *pieces, b"\r\n")
    assert out.startswith(b"HTTP/1.1 431 ")
    assert b"trailers are too large" in out


async def test_trailers_within_the_limit_are_ignored_not_taken_for_headers(server: HttpServer) -> None:
    request = HEAD + b"2\r\n{}\r\n0\r\nAuthorization: Bearer sneaky\r\n\r\n"
    out = await talk(server.port, request, wait=0.3)
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"auth=- body={}")


async def test_a_trailer_is_no_header_on_a_pipelined_request(server: HttpServer) -> None:
    first = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1"
    second = HEAD + b"2\r\n{}\r\n0\r\nAuthorization: Bearer sneaky\r\n\r\n"
    out = await talk(server.port, first + second, wait=0.3)  # the second head is read by a replay
    assert out.count(b"HTTP/1.1 200 ") == 2
    assert out.endswith(b"auth=- body={}")


async def test_a_chunk_announced_in_one_read_and_sent_in_the_next_is_no_trailer(server: HttpServer) -> None:
    data = b"a" * 8192  # far past the header limit, in the read after its chunk header
    out = await talk(server.port, HEAD + b"2000\r\n", data + b"\r\n0\r\n\r\n", pause=0.05, wait=0.3)
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"body=" + data)


async def test_a_client_still_sending_reads_its_refusal_before_the_close(server: HttpServer) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n"
    out = await talk(server.port, head, *[b"a" * 65536] * 61)  # refused at the head; it sends on regardless
    assert out.startswith(b"HTTP/1.1 413 ")  # a close with its bytes unread would have reset it first


async def test_response_headers_never_split_and_never_fail_to_encode() -> None:
    async def handler(request: Request) -> Response:
        return Response(200, b"ok", [("x-a", "v\r\nset-cookie: evil"), ("x-model", "модель"), ("x-b", "plain")])

    srv = await start_server(handler)
    try:
        out = await talk(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2, wait=0.3)
    finally:
        await srv.close()
    assert out.count(b"HTTP/1.1 200 OK") == 2  # both answered: no dead connection
    assert b"\r\nset-cookie" not in out.lower()
    assert b"x-a: v%0D%0Aset-cookie: evil\r\n" in out
    assert b"x-model: %D0%BC%D0%BE%D0%B4%D0%B5%D0%BB%D1%8C\r\nx-b: plain\r\n" in out


GET = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"


async def read_all(reader: asyncio.StreamReader, wait: float = 3.0) -> bytes:
    out = b""
    async with asyncio.timeout(wait):
        while chunk := await reader.read(65536):
            out += chunk
    return out


async def test_a_half_closed_client_gets_its_answers_then_the_close(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(GET + b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    writer.write_eof()  # SHUT_WR: the requests are complete, nothing more comes
    out = await read_all(reader)
    writer.close()
    assert out.count(b"HTTP/1.1 200 OK") == 2
    assert out.count(b"HTTP/1.1 100 Continue\r\n\r\n") <= 1  # the probe that tells a half-close from a close


async def test_a_half_close_mid_request_closes_without_an_answer(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
    writer.write_eof()
    assert await read_all(reader) == b""
    writer.close()


async def test_shutdown_drains_in_flight_and_answers_idle_keepalive_with_close() -> None:
    srv = await start_server(echo_auth, limits=ServerLimits(shutdown_timeout=5.0))
    busy_r, busy_w = await asyncio.open_connection("127.0.0.1", srv.port)
    idle_r, idle_w = await asyncio.open_connection("127.0.0.1", srv.port)
    idle_w.write(GET)
    assert (await idle_r.readuntil(b"body=")).startswith(b"HTTP/1.1 200 OK")  # now idle, kept alive
    busy_w.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    closing = asyncio.create_task(srv.close(idle_grace=2.0))
    await asyncio.sleep(0.05)
    with pytest.raises(OSError):  # no longer accepting
        await asyncio.open_connection("127.0.0.1", srv.port)
    idle_w.write(GET)  # the next request on the idle connection, sent after the stop: answered, then closed
    idle_out, busy_out = await read_all(idle_r), await read_all(busy_r)
    await closing
    assert idle_out.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in idle_out
    assert busy_out.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in busy_out
    assert asyncio.get_running_loop().time() - started < 1.5  # drained: no wait for the grace or the deadline
    for writer in (busy_w, idle_w):
        writer.close()


async def test_shutdown_closes_a_silent_idle_connection_after_the_grace() -> None:
    srv = await start_server(echo_auth, limits=ServerLimits(shutdown_timeout=5.0))
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(GET)
    await reader.readuntil(b"body=")
    started = asyncio.get_running_loop().time()
    await srv.close(idle_grace=0.3)
    waited = asyncio.get_running_loop().time() - started
    assert 0.25 < waited < 2.0
    assert await read_all(reader) == b""  # a clean close (no reset)
    writer.close()


def test_the_drain_deadline_is_a_server_setting() -> None:
    providers = {"p": {"type": "openai", "base_url": "http://127.0.0.1:9", "api_key": "k"}}
    assert parse_config({"providers": providers}, env={}).server.drain_timeout == 10.0
    assert parse_config({"server": {"drain_timeout": 3}, "providers": providers}, env={}).server.drain_timeout == 3.0
    with pytest.raises(ConfigError, match="drain_timeout"):
        parse_config({"server": {"drain_timeout": -1}, "providers": providers}, env={})
