"""Closed-loop saturation with wrk: the most requests per second a contender serves, and its CPU per request."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.payloads import SDK_HEADERS
from bench.procs import Proc

__all__ = ["Saturation", "saturate", "wrk_binary"]


@dataclass(frozen=True, slots=True)
class Saturation:
    rps: float
    requests: int
    errors: int
    cpu_us: float  # CPU µs per request of the measured process(es)


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def saturate(
    url: str,
    body: bytes,
    measured: Proc,
    workdir: Path,
    *,
    seconds: float,
    connections: int = 64,
    cpus: list[int] | None = None,
) -> Saturation:
    """Drive `url` with POSTs of `body` on `connections` keep-alive connections for `seconds`."""
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    script = workdir / "post.lua"
    extra = "".join(f'wrk.headers["{name}"] = "{value}"\n' for name, value in SDK_HEADERS)
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        + extra
        + 'wrk.headers["Authorization"] = "Bearer sk-bench-7f3a9c2e4b8d1f6a0c5e9b3d7a2f4c8e"\n'
        f"wrk.body = [==[{body.decode()}]==]\n"
    )
    argv = [binary, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script), url]
    if cpus:
        argv = ["taskset", "-c", ",".join(map(str, cpus)), *argv]
    before = measured.cpu()
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    used = measured.cpu() - before
    requests = int(_find(r"(\d+) requests in", out))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    errors += int(_find(r"Non-2xx or 3xx responses: (\d+)", out, "0"))
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    return Saturation(rps, requests, errors, used / max(requests, 1) * 1e6)


def _find(pattern: str, text: str, default: str | None = None) -> str:
    match = re.search(pattern, text)
    if match is None:
        if default is not None:
            return default
        raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{text}")
    return match.group(1)
