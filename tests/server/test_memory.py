"""A closed client connection is freed when it closes, by reference counting, not whenever the cycle
collector next runs a full pass: `sidestep serve` collects the oldest generation rarely (`serve._tune_gc`),
and a connection refused mid-body holds up to `max_body_bytes` of reads (the soak's RSS grew by ~12 MB a
round of hostile bodies until this held). Raw sockets on loopback, the collector off while each case runs."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

import pytest
import uvloop

from sidestep.server.connection import Connection
from sidestep.server.protocol import ServerLimits, start_server
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


def connections() -> int:
    """Connections that exist, freed or not. Counted, not watched with a weak reference: a compiled
    (mypyc) Connection does not clear weak references when it is freed."""
    return sum(1 for each in gc.get_objects() if isinstance(each, Connection))


async def send_and_leave(pieces: list[bytes]) -> None:
    """Send `pieces`, read an answer or the refusal, close; return once the server saw the close."""
    server = await start_server(echo, limits=ServerLimits(max_body_bytes=LIMIT, max_header_bytes=1024))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await until(lambda: server.connections)
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
    finally:
        await server.close()


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("case", CASES)
def test_a_closed_connection_is_freed_without_the_cycle_collector(loop: str, case: str) -> None:
    gc.collect()
    gc.disable()
    try:
        before = connections()
        with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
            runner.run(send_and_leave(CASES[case]))
        assert connections() == before
    finally:
        gc.enable()
