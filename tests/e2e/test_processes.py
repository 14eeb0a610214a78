"""The gateway as an operator runs it, in real processes: workers supervised (a killed one is logged and
replaced), start-up refusals in one line with exit 2 (a port in use, a broken spend store), and a reload
signal during start-up that does not end the process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sidestep.cli.main import main
from sidestep.config.load import parse_config
from sidestep.errors import ConfigError
from sidestep.plugins.governance.plugin import Governance
from sidestep.supervise import RestartBudget, RestartPolicy, describe_exit
from sidestep.testing import RunningSim, config_for
from tests.sim_helpers import MSG

Sims = dict[str, RunningSim]
BODY = {"model": "one", "messages": MSG}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "sidestep", *argv], stdout=out, stderr=subprocess.STDOUT)


async def _until(probe: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = probe()
            if asyncio.iscoroutine(result):
                result = await result
        except httpx.TransportError:
            result = None
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


async def _all_ok(port: int, count: int = 4) -> bool:
    for _ in range(count):  # a fresh connection each: the kernel may hand any to any worker
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY)
            if answer.status_code != 200:
                return False
    return True


@contextmanager
def _stopped(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)


def _config(sims: Sims, tmp_path: Path, port: int, **server: Any) -> Path:
    path = tmp_path / "sidestep.yaml"
    path.write_text(yaml.safe_dump(config_for(sims, {"one": ["primary/gpt-sim"]}, server={"port": port, **server})))
    return path


# -- workers ----------------------------------------------------------------------------------------


async def test_a_worker_killed_with_sigkill_is_logged_and_replaced(sims: Sims, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    proc = _spawn(["serve", "--config", str(_config(sims, tmp_path, port, workers=2))], log)
    with _stopped(proc):
        await _until(lambda: log.read_text().count("listening") == 2)
        victim = _children(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        await _until(lambda: log.read_text().count("listening") == 3)
        workers = _children(proc.pid)
        assert len(workers) == 2 and victim not in workers, log.read_text()
        assert await _until(lambda: _all_ok(port))
        assert f"(pid {victim}) killed by SIGKILL" in log.read_text()
        assert "restarted" in log.read_text()
        proc.terminate()
        assert proc.wait(15) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


_DYING = textwrap.dedent(
    """
    import logging, os, sys
    from sidestep.supervise import RestartPolicy, supervise
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    def spawn() -> int:
        pid = os.fork()
        if pid == 0:
            os._exit(int(sys.argv[1]))
        return pid

    sys.exit(supervise(spawn, 2, RestartPolicy(limit=3, window=60, first_delay=0.01)))
    """
)


@pytest.mark.parametrize(("worker_status", "parent_status", "restarts"), [(1, 1, 3), (2, 2, 0)])
def test_the_supervisor_gives_up_on_workers_that_keep_dying(
    worker_status: int, parent_status: int, restarts: int
) -> None:
    """Workers that crash are restarted `limit` times in the window, then the parent exits non-zero;
    one that refuses to start (status 2: config, port) is not restarted at all."""
    run = subprocess.run(
        [sys.executable, "-c", _DYING, str(worker_status)], capture_output=True, text=True, timeout=30, check=False
    )
    assert run.returncode == parent_status, run.stderr
    assert run.stderr.count("restarted after") == restarts
    assert f"exited with status {worker_status}" in run.stderr
    assert "exiting with status" in run.stderr


def test_the_restart_budget_backs_off_and_forgets_old_deaths() -> None:
    now = [0.0]
    budget = RestartBudget(RestartPolicy(limit=3, window=10, first_delay=0.5, max_delay=1.5), clock=lambda: now[0])
    assert [budget.next_delay(), budget.next_delay(), budget.next_delay()] == [0.5, 1.0, 1.5]
    assert budget.next_delay() is None  # a fourth death within 10 s
    now[0] = 9.0
    assert budget.next_delay() is None  # still within 10 s of the first ones
    now[0] = 10.5  # the deaths at 0 s have left the window; the one at 9 s counts
    assert budget.next_delay() == 1.0


def test_exit_statuses_read_as_words() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exited with status 3"


async def test_a_sighup_during_start_up_does_not_end_the_process(sims: Sims, tmp_path: Path) -> None:
    """Reload signals from 150 ms after exec (the config is still being read) until the gateway listens."""
    port = _free_port()
    log = tmp_path / "serve.log"
    proc = _spawn(["serve", "--config", str(_config(sims, tmp_path, port))], log)
    with _stopped(proc):
        await asyncio.sleep(0.15)
        deadline = time.monotonic() + 20
        while "listening" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            os.kill(proc.pid, signal.SIGHUP)
            await asyncio.sleep(0.02)
        assert proc.poll() is None, f"ended with {proc.returncode}: {log.read_text()}"
        assert await _until(lambda: _all_ok(port, 1))


# -- refusals in one line ---------------------------------------------------------------------------


@contextmanager
def _taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "serve --workers 2", "sim"])
def test_a_port_in_use_is_one_line_and_exit_2(command: str, tmp_path: Path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}  # serve's providers from the environment; nothing is called
    with _taken_port() as port:
        argv = [sys.executable, "-m", "sidestep", *command.split(), "--port", str(port)]
        run = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env, check=False)
    assert run.returncode == 2
    refusals = [line for line in run.stderr.splitlines() if "cannot listen" in line]
    assert refusals and refusals[0].endswith(f"cannot listen on 127.0.0.1:{port}: address already in use")
    assert "Traceback" not in run.stderr


def _store_config(tmp_path: Path, store: Path) -> Path:
    path = tmp_path / "gw.yaml"
    config = {
        "providers": {"p": {"type": "openai", "base_url": "http://127.0.0.1:9", "api_key": "sk-p"}},
        "routes": {"one": ["p/gpt"]},
        "governance": {"store": str(store), "keys": {"k": {"key": "sk-k", "budget_usd": 5}}},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "the file is empty (0 bytes)"), (b"not a database " * 20, "not a SQLite spend store")],
)
def test_an_empty_or_corrupt_spend_store_is_refused_in_one_line(
    content: bytes, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "spend.db"
    store.write_bytes(content)
    assert main(["serve", "--config", str(_store_config(tmp_path, store))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and problem in err and "--reset-broken-store" in err
    assert store.read_bytes() == content  # left as it was
    # A reload (or any other path that opens the store) refuses the file too, with the same reason.
    config = parse_config(yaml.safe_load(_store_config(tmp_path, store).read_text()), source="gw.yaml")
    with pytest.raises(ConfigError, match=re.escape(problem)):
        Governance(config.governance, source="gw.yaml")


async def test_reset_broken_store_moves_it_aside_and_starts_a_new_one(sims: Sims, tmp_path: Path) -> None:
    store = tmp_path / "spend.db"
    store.write_bytes(b"")
    config = yaml.safe_load(_config(sims, tmp_path, _free_port()).read_text())
    config["governance"] = {"store": str(store), "keys": {"k": {"key": "sk-k", "budget_usd": 5}}}
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "serve.log"
    proc = _spawn(["serve", "--config", str(path), "--reset-broken-store"], log)
    with _stopped(proc):
        await _until(lambda: "listening" in log.read_text())
        proc.terminate()
        assert proc.wait(15) == 0
    _assert_set_aside(tmp_path, store, log)


def _assert_set_aside(tmp_path: Path, store: Path, log: Path) -> None:
    aside = list(tmp_path.glob("spend.db.broken-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b""
    assert store.stat().st_size > 0  # a new, working store
    assert f"moved the broken spend store '{store}' to '{aside[0]}'" in log.read_text()
