"""Piped stream relay: same-format streams are written from the upstream's read callback (or, on a transport
without `Pipes`, piece by piece, waiting on the client). A slow client must push back on the upstream (bounded
memory), and its pauses must not count as upstream silence."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from sidestep.testing import running_gateway
from tests.conftest import PlainTransport

PAD = "x" * 16_000
EVENTS = 3_000  # ~48 MB: more than loopback socket buffers on both hops can hold
EVENT = b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": PAD}}]}).encode() + b"\n\n"


async def _start_stream(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw streaming chat request to the gateway; returns once the response head is read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%b" % (len(body), body)
    )
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def _upstream(finished: list[float]) -> asyncio.Server:
    """An OpenAI-style streaming upstream that writes as fast as the gateway reads."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(EVENTS):
            writer.write(b"%x\r\n%b\r\n" % (len(EVENT), EVENT))
            await writer.drain()
        done = b"data: [DONE]\n\n"
        writer.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(done), done))
        await writer.drain()
        finished.append(time.monotonic())
        writer.close()
        await writer.wait_closed()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


@pytest.mark.parametrize("wrap", [None, PlainTransport], ids=["piped", "plain"])
async def test_a_slow_client_pauses_the_upstream_and_its_pause_is_not_upstream_silence(
    wrap: type[PlainTransport] | None,
) -> None:
    finished: list[float] = []
    upstream = await _upstream(finished)
    port = upstream.sockets[0].getsockname()[1]
    config = {
        "providers": {"up": {"type": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "api_key": "k"}},
        "routes": {"chat": {"target": "up/m", "timeouts": {"idle": 0.3}}},
    }
    async with running_gateway(config, wrap=wrap) as gw:
        reader, writer = await _start_stream(gw.port)
        stalled_at = time.monotonic()
        await asyncio.sleep(1.0)  # the client reads nothing: over three idle timeouts
        assert not finished, "the upstream wrote everything while the client read nothing: no backpressure"
        received = bytearray()
        while not received.endswith(b"0\r\n\r\n"):
            piece = await asyncio.wait_for(reader.read(1 << 20), 10)
            assert piece, "the gateway closed the stream early"
            received += piece
        writer.close()
        await writer.wait_closed()
    upstream.close()
    await upstream.wait_closed()
    assert finished and finished[0] > stalled_at + 1.0
    text = _dechunk(bytes(received))
    assert text.count(PAD.encode()) == EVENTS  # every event, none lost
    assert b"[DONE]" in text
    assert b'"error"' not in text  # the stall was not taken for an idle upstream


def _dechunk(data: bytes) -> bytes:
    out, at = bytearray(), 0
    while True:
        end = data.index(b"\r\n", at)
        size = int(data[at:end], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + size]
        at = end + 2 + size + 2


async def test_a_client_that_leaves_mid_stream_releases_the_upstream() -> None:
    upstream_closed = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(v.split(b":")[1]) for v in head.split(b"\r\n") if v.lower().startswith(b"content-length"))
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            while True:  # an answer that never ends, one event every 20 ms
                writer.write(b"%x\r\n%b\r\n" % (len(EVENT), EVENT))
                await writer.drain()
                await asyncio.sleep(0.02)
        except ConnectionError:
            upstream_closed.set()
        finally:
            writer.close()

    upstream = await asyncio.start_server(endless, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    config = {"providers": {"up": {"type": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "api_key": "k"}}}
    async with running_gateway({**config, "routes": {"chat": ["up/m"]}}) as gw:
        reader, writer = await _start_stream(gw.port)
        await reader.readexactly(len(EVENT))  # content is flowing through the pipe
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(upstream_closed.wait(), 5)  # the gateway hung up on the upstream too
    upstream.close()
    await upstream.wait_closed()
