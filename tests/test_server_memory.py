"""A closed client connection is freed when it closes, by reference counting, not whenever the cycle
collector next runs a full pass: `sidestep serve` collects the oldest generation rarely (`serve._tune_gc`),
and a connection refused mid-body holds up to `max_body_bytes` of reads (the soak's RSS grew by ~12 MB a
round of hostile bodies until this held). Raw sockets on loopback, the collector off while each case runs."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable

import pytest
import uvloop

from sidestep.server.connection import Connection
from sidestep.server.protocol import HttpServer, ServerLimits, start_server
from sidestep.server.types import Request, Response

LIMIT = 64 * 1024


async def echo(request: Request) -> Response:
    if request.path == "/slow":
        await asyncio.sleep(5)
    return Response(200, b"body=%d" % len(request.body))


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,  # what `sidestep serve` runs on: its transports hold their protocol otherwise
}


def post(length: int, extra: bytes = b"") -> bytes:
    return b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n" % (length, extra)


CASES = {
    "answered, then closed by the client": [post(2) + b"{}"],
    "a body past the limit, refused mid-body": [post(4 * LIMIT), *[b"a" * 16384] * 8],
    "a declared body past the limit": [post(4 * LIMIT)],
    "chunked trailers past the header limit": [
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n",
        *[b"x-trailer: " + b"t" * 200 + b"\r\n"] * 10,
    ],
    "a malformed request": [b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n"],
    "a pipelined head read by a replay": [post(1) + b"1" + post(2) + b"{}"],
    "a client that leaves mid-answer": [b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"],
}


async def until(condition: Callable[[], object], seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {seconds} s")


async def connection_of(server: HttpServer) -> weakref.ref[Connection]:
    await until(lambda: server.connections)
    return weakref.ref(next(iter(server.connections)))


async def send_and_leave(server: HttpServer, pieces: list[bytes]) -> weakref.ref[Connection]:
    """Send `pieces`, read an answer or the refusal, close; a reference to the server's side of it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    conn = await connection_of(server)
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
        await asyncio.wait_for(reader.read(65536), 0.5)
    except (ConnectionError, TimeoutError):
        pass
    writer.close()
    await until(lambda: not server.connections)
    await asyncio.sleep(0.01)  # callbacks scheduled by the close run
    return conn


async def leftover(pieces: list[bytes]) -> list[str]:
    """What still refers to the closed connection, by type; empty when it was freed."""
    server = await start_server(echo, limits=ServerLimits(max_body_bytes=LIMIT, max_header_bytes=1024))
    try:
        conn = await send_and_leave(server, pieces)
    finally:
        await server.close()
    alive = conn()
    return [type(each).__name__ for each in gc.get_referrers(alive)] if alive is not None else []


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("case", CASES)
def test_a_closed_connection_is_freed_without_the_cycle_collector(loop: str, case: str) -> None:
    gc.collect()
    gc.disable()
    try:
        with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
            assert runner.run(leftover(CASES[case])) == []
    finally:
        gc.enable()
