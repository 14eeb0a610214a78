"""What `sidestep serve` leaves behind when it stops (SIGTERM): nothing of its plugins. Its stdio MCP server has
exited (the plugin's `closed()` is awaited within the drain, not abandoned to the interpreter's exit), and
governance's spend store has its last flush."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
import yaml

from sidestep.testing import RunningSim, config_for
from tests.sim_helpers import MSG

SERVER = str(Path(__file__).parents[1] / "mcp_server.py")
PRICE = {"input": 1000.0, "output": 2000.0}  # USD per million tokens: a sim answer costs a few cents


async def test_a_stopped_gateway_leaves_no_stdio_mcp_child_and_flushes_its_spend(
    sims: dict[str, RunningSim], tmp_path: Path
) -> None:
    port, store = _free_port(), tmp_path / "spend.db"
    config = config_for(sims, {"chat": ["primary/gpt-sim"]}, server={"port": port, "drain_timeout": 10})
    config["governance"] = {
        "store": str(store),
        "pricing": {"gpt-sim": PRICE},
        "keys": {"k": {"key": "sk-k", "budget_usd": 100}},
    }
    config["mcp"] = {"servers": {"files": {"command": sys.executable, "args": [SERVER, "files"], "timeout": 10}}}
    path, log = tmp_path / "sidestep.yaml", tmp_path / "serve.log"
    path.write_text(yaml.safe_dump(config))
    out = log.open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidestep", "serve", "--config", str(path), stdout=out, stderr=out
    )
    out.close()  # the child has its own copy
    try:
        await _until(lambda: "listening" in log.read_text())
        headers = {"authorization": "Bearer sk-k"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=20) as http:
            child = await _child_pid(http)
            assert _alive(child)
            chat = await http.post("/v1/chat/completions", json={"model": "chat", "messages": MSG})
            assert chat.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert not _alive(child), f"the stdio MCP server (pid {child}) outlived the gateway"
    lines = log.read_text().splitlines()
    assert "still stopping" not in "".join(lines)
    # The gateway waited for it: the server's last line (its stderr is the gateway's) comes before the gateway's.
    ended = [i for i, line in enumerate(lines) if "mcp server files stopped" in line]
    stopped = [i for i, line in enumerate(lines) if line.rstrip().endswith("stopped") and "mcp server" not in line]
    assert ended and stopped and ended[0] < stopped[-1], lines[-6:]
    with closing(sqlite3.connect(str(store))) as db:
        spent = db.execute("SELECT sum(usd) FROM spend WHERE scope = 'key:k'").fetchone()[0]
    assert spent and spent > 0  # the last flush, at the stop


async def _child_pid(http: httpx.AsyncClient) -> int:
    """The stdio server's pid, asked of it through the gateway once it is connected."""
    for _ in range(300):
        servers = (await http.get("/sidestep/mcp")).json()["servers"]
        if servers[0]["state"] == "up":
            break
        await asyncio.sleep(0.05)
    answer = await http.post("/v1/mcp/tools/call", json={"name": "files__pid"})
    assert answer.status_code == 200 and not answer.json().get("isError"), answer.text
    return int(answer.json()["structuredContent"]["result"])


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting to be reaped counts as gone: it runs nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


async def _until(done: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
