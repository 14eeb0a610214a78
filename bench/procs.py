"""Processes under measurement: start pinned to a core, read their CPU time and RSS from /proc, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["Proc", "cpu_seconds", "free_port", "on_cores", "rss_mb", "running", "start", "wait_http"]

_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proc:
    """A started process (and, for nginx, its workers): what we measure."""

    def __init__(self, popen: subprocess.Popen[bytes], name: str, log: Path | None = None) -> None:
        self.popen = popen
        self.name = name
        self.log = log

    @property
    def pids(self) -> list[int]:
        """The process and its direct children (nginx does its work in a worker)."""
        return [self.popen.pid, *_children(self.popen.pid)]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def rss(self) -> float:
        return sum(rss_mb(pid) for pid in self.pids)

    def pin(self, cpus: Sequence[int]) -> None:
        """Move the process and its workers to `cpus` (the latency phases run everything on one core)."""
        for pid in self.pids:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, set(cpus))

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def start(
    argv: Sequence[str],
    name: str,
    *,
    cpus: Sequence[int] | None,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> Proc:
    """Start `argv` pinned to `cpus` (None: anywhere); output goes to `log` or nowhere."""
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - closed by the child's exit
    mask = set(cpus) if cpus is not None else None

    def pin() -> None:
        if mask is not None:
            os.sched_setaffinity(0, mask)

    environ = {**os.environ, **env} if env else None
    popen = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin, env=environ)
    return Proc(popen, name, log)


@contextlib.contextmanager
def running(argv: Sequence[str], name: str, *, cpus: Sequence[int] | None, log: Path | None = None) -> Iterator[Proc]:
    proc = start(argv, name, cpus=cpus, log=log)
    try:
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def on_cores(procs: Sequence[Proc], cpus: Sequence[int], home: Sequence[int]) -> Iterator[None]:
    """Run the block with `procs` moved to `cpus`, then move them back to `home`."""
    for proc in procs:
        proc.pin(cpus)
    try:
        yield
    finally:
        for proc in procs:
            proc.pin(home)


def wait_http(port: int, path: str = "/", timeout: float = 10.0, proc: Proc | None = None) -> float:
    """Seconds until `GET path` on `port` answers with any HTTP status; raises when it never does."""
    started = time.perf_counter()
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    while time.perf_counter() - started < timeout:
        if proc is not None and proc.popen.poll() is not None:
            detail = proc.log.read_text()[-2000:] if proc.log and proc.log.exists() else ""
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} before serving\n{detail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                sock.sendall(request)
                if sock.recv(16).startswith(b"HTTP/1."):
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.002)
    raise RuntimeError(f"nothing answered on port {port} within {timeout} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            found += [int(p) for p in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            continue
    return found
