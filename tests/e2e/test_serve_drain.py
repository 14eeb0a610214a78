"""The graceful drain of a real `sidestep serve` process on SIGTERM, seen from raw keep-alive connections:
in-flight requests are answered with `Connection: close`, the listener stops accepting, an idle keep-alive
connection's next request is answered (and a silent one closed cleanly, not reset), and the process
exits 0 within `server.drain_timeout`."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
import yaml

from sidestep.testing import RunningSim, config_for
from tests.sim_helpers import MSG

Sims = dict[str, RunningSim]
DRAIN = 5.0  # server.drain_timeout: far above what the drain needs (the 1 s idle grace, a 0.5 s upstream)


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_drains_keepalive_connections_and_exits_0(sims: Sims, tmp_path: Path, workers: int) -> None:
    port = _free_port()
    routes = {"slow": ["primary/gpt-sim@latency=0.5"], "fast": ["primary/gpt-sim"]}
    config = config_for(sims, routes, server={"port": port, "workers": workers, "drain_timeout": DRAIN})
    path, log = tmp_path / "sidestep.yaml", tmp_path / "serve.log"
    path.write_text(yaml.safe_dump(config))
    proc = _serve(path, log)
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        await _until(lambda: log.read_text().count("listening") == workers)
        idle, silent = await _connect(port), await _connect(port)
        conns += [idle, silent]
        for conn in (idle, silent):  # each served once: now idle keep-alive connections
            conn[1].write(_chat("fast"))
            status, headers, _ = await _response(conn[0])
            assert status == 200 and "connection" not in headers
        received = len(sims["primary"].sim.received)
        busy = [await _connect(port) for _ in range(2)]
        conns += busy
        for _reader, writer in busy:
            writer.write(_chat("slow"))
        await _until(lambda: len(sims["primary"].sim.received) == received + 2)  # both upstream: in flight
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await _until(lambda: log.read_text().count("shutting down") == workers)
        assert await _refused(port)
        idle[1].write(_chat("fast"))  # the client's next request, racing the stop: answered, not reset
        for reader, _writer in [*busy, idle]:
            status, headers, body = await _response(reader)
            assert (status, headers.get("connection")) == (200, "close")
            assert msgspec.json.decode(body)["choices"][0]["message"]["content"]
            assert await asyncio.wait_for(reader.read(), 2) == b""  # then a clean close
        assert await asyncio.wait_for(silent[0].read(), 3) == b""  # closed after the grace, not reset
        code = await asyncio.to_thread(proc.wait, DRAIN)
        assert code == 0 and time.monotonic() - signalled < DRAIN
    finally:
        for _reader, writer in conns:
            writer.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert "shutdown timeout" not in log.read_text()


def _serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        argv = [sys.executable, "-m", "sidestep", "serve", "--config", str(config)]
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def _chat(model: str) -> bytes:
    body = msgspec.json.encode({"model": model, "messages": MSG})
    head = "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    return int(status_line.split()[1]), headers, body


async def _refused(port: int) -> bool:
    """Whether the listener is gone (a connect attempt made as the stop begins may still be accepted)."""
    for _ in range(40):
        try:
            _reader, writer = await _connect(port)
        except ConnectionRefusedError:
            return True
        writer.close()
        await asyncio.sleep(0.05)
    return False


async def _until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
