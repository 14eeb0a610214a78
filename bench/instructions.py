"""`python -m bench.instructions`: how many machine instructions sidestep executes per request, counted by
valgrind's callgrind — a figure that does not drift with the machine, for comparing two versions of the
hot path on a shared VM where CPU time moves by ±20 % from one minute to the next.

Each config runs under callgrind against the nginx upstream of `make bench` (non-stream JSON and an
8-chunk SSE stream). After a warm-up the counters are zeroed, exactly `--requests` requests are sent one
at a time on one keep-alive connection (no batching, so every request pays its own wake-ups), and the
user-space instructions of the sidestep process (interpreter, uvloop, httptools, msgspec, libc) are
divided by that count. Kernel work (the syscalls) is not counted. `PYTHONHASHSEED` is fixed. Repeated
runs of the same code agree within ~0.5 %; a change that moves the figure by more than ~1 % is real.

    .venv/bin/python -m bench.instructions                  # both configs, both workloads
    .venv/bin/python -m bench.instructions --configs minimal --workloads chat --requests 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import loadgen
from bench.contenders import build_compiled, sidestep_config
from bench.nginx import nginx_binary, start_nginx_upstream
from bench.payloads import chat_request
from bench.procs import Proc, free_port, start, wait_http

__all__ = ["CONFIGS", "WORKLOADS", "Workload", "available", "count_instructions", "main"]

CHAT = "/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    model: str
    stream: bool

    def body(self) -> bytes:
        return chat_request(self.model, stream=self.stream)


WORKLOADS = {"chat": Workload("chat", "chat", False), "stream": Workload("stream", "chat-stream", True)}
CONFIGS = ("minimal", "realistic")
WARMUP = 100


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="minimal,realistic", help="comma-separated: minimal, realistic")
    parser.add_argument("--workloads", default="chat,stream", help="comma-separated: chat, stream")
    parser.add_argument("--requests", type=int, default=1000, help="requests counted per workload")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--compiled", action="store_true", help="count the mypyc build (tools/compile.py) instead")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    if not available():
        print("bench: needs valgrind and nginx (Debian: apt-get install valgrind nginx-light)", file=sys.stderr)
        return 2
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS] + [w for w in args.workloads.split(",") if w not in WORKLOADS]
    if unknown:
        parser.error(
            f"unknown config or workload: {', '.join(unknown)} (configs: {', '.join(CONFIGS)}; "
            f"workloads: {', '.join(WORKLOADS)})"
        )
    workloads = [WORKLOADS[name] for name in args.workloads.split(",")]
    with tempfile.TemporaryDirectory(prefix="sidestep-instructions-") as tmp:
        compiled = build_compiled(Path(tmp) / "compiled") if args.compiled else None
        if args.compiled and compiled is None:
            return 1
        figures = count_instructions(configs, workloads, args.requests, Path(tmp), compiled=compiled)
    print(f"{'config':<12} {'workload':<10} {'instructions / request':>24}")
    for config, per_workload in figures.items():
        for workload, count in per_workload.items():
            print(f"{config:<12} {workload:<10} {count:>24,.0f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def available() -> bool:
    """valgrind (with callgrind_control) and nginx are installed (`bench/setup.sh` installs them)."""
    return all(shutil.which(tool) for tool in ("valgrind", "callgrind_control")) and nginx_binary() is not None


def count_instructions(
    configs: list[str],
    workloads: list[Workload],
    requests: int,
    workdir: Path,
    warmup: int = WARMUP,
    compiled: Path | None = None,
) -> dict[str, dict[str, float]]:
    """{config: {workload: instructions per request}}; of the build in `compiled` (`tools/compile.py --into`)
    when given."""
    workdir.mkdir(parents=True, exist_ok=True)
    upstream_port = free_port()
    upstream = start_nginx_upstream(workdir, upstream_port, None)
    figures: dict[str, dict[str, float]] = {}
    try:
        for config in configs:
            port = free_port()
            stem = f"{config}-compiled" if compiled is not None else config
            path = sidestep_config(config, port, upstream_port, workdir, nginx_sse=True, stem=stem)
            out = workdir / f"callgrind-{stem}.out"
            proc = _start_counted(path, port, out, compiled)
            try:
                figures[config] = {w.name: _per_request(proc, port, out, w, requests, warmup) for w in workloads}
            finally:
                proc.stop()
    finally:
        upstream.stop()
    return figures


def _start_counted(config: Path, port: int, out: Path, compiled: Path | None = None) -> Proc:
    binary = Path(sys.executable).parent / "sidestep"
    argv = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        str(binary),
        "--log-level",
        "warning",
        "serve",
        "--config",
        str(config),
    ]
    env = {"PYTHONHASHSEED": "0"}
    if compiled is not None:
        env["PYTHONPATH"] = str(compiled / "src")
    proc = start(argv, f"sidestep under callgrind ({config.stem})", cpus=None, env=env)
    wait_http(port, "/health", timeout=180, proc=proc)
    return proc


def _per_request(proc: Proc, port: int, out: Path, workload: Workload, requests: int, warmup: int) -> float:
    body = workload.body()
    _drive(port, body, warmup)
    pid = str(proc.popen.pid)
    subprocess.run(["callgrind_control", "--zero", pid], check=True, capture_output=True)
    sent = _drive(port, body, requests)
    dump = subprocess.run(["callgrind_control", "--dump", pid], check=True, capture_output=True, text=True)
    return _newest_total(out, dump.stdout) / sent


def _drive(port: int, body: bytes, count: int) -> int:
    run = asyncio.run(loadgen.closed_loop(port, CHAT, body, 1, 3600.0, count=count))
    if run.errors:
        raise RuntimeError(f"{run.errors} of {run.sent} requests failed")
    return run.sent


def _newest_total(out: Path, said: str) -> int:
    """The instruction total of the dump just written (`<out>.<n>`, the highest n)."""
    dumps = sorted(out.parent.glob(out.name + ".*"), key=lambda p: int(p.suffix[1:]))
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump: {said.strip()}")
    for line in dumps[-1].read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dumps[-1]}")


if __name__ == "__main__":
    raise SystemExit(main())
