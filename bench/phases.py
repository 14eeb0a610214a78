"""One function per figure. Each returns plain numbers; `report.py` turns them into ratios and verdicts."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.contenders import Contender
from bench.payloads import cacheable_request, chat_request
from bench.procs import free_port, start, wait_http
from bench.wrk import saturate

__all__ = [
    "cache_costs",
    "cold_start",
    "import_time",
    "latency",
    "latency_summary",
    "per_chunk",
    "saturation",
    "stream_ttfb",
    "summarize",
    "ttfb_summary",
]

CHAT = "/v1/chat/completions"


def import_time(runs: int) -> dict[str, float]:
    """Median wall seconds of `import sidestep` (what a library user pays) and of the serving modules."""
    code = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"
    out = {}
    for label, mod in (("import sidestep", "sidestep"), ("import sidestep.app", "sidestep.app, sidestep.serve")):
        samples = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code.format(mod=mod)], capture_output=True, text=True, check=True
                ).stdout
            )
            for _ in range(runs)
        ]
        out[label] = statistics.median(samples)
    return out


def cold_start(config: Path, runs: int, cpus: list[int] | None) -> float:
    """Median seconds from spawning `sidestep serve` to its first answered request."""
    samples = []
    binary = str(Path(sys.executable).parent / "sidestep")
    for _ in range(runs):
        port = free_port()
        began = time.perf_counter()
        proc = start(
            [binary, "--log-level", "warning", "serve", "--config", str(config), "--port", str(port)],
            "sidestep cold start",
            cpus=cpus,
        )
        try:
            wait_http(port, "/health", timeout=20, proc=proc)
            samples.append(time.perf_counter() - began)
        finally:
            proc.stop()
    return statistics.median(samples)


def saturation(
    target: Contender, workdir: Path, seconds: float, use_wrk: bool, load_cpus: list[int] | None
) -> tuple[float, float]:
    """One saturation run: (max RPS, CPU µs per request)."""
    body = chat_request(target.model)
    if use_wrk:
        result = saturate(
            f"http://127.0.0.1:{target.port}{CHAT}", body, target.proc, workdir, seconds=seconds, cpus=load_cpus
        )
        return result.rps, result.cpu_us
    before = target.proc.cpu()
    run = asyncio.run(loadgen.closed_loop(target.port, CHAT, body, 16, seconds))
    return run.sent / run.elapsed, (target.proc.cpu() - before) / max(run.sent, 1) * 1e6


def summarize(runs: list[tuple[float, float]], baseline: list[tuple[float, float]] | None) -> dict[str, Any]:
    """Median and spread of a contender's runs; with the baseline's runs of the same rounds, the median
    of the per-round CPU ratios (drift on a shared machine hits both sides of a round alike)."""
    rps, cpu = [r for r, _ in runs], [c for _, c in runs]
    out: dict[str, Any] = {
        "rps": statistics.median(rps),
        "rps_spread": [min(rps), max(rps)],
        "cpu_us": statistics.median(cpu),
        "cpu_spread": [min(cpu), max(cpu)],
    }
    if baseline:
        ratios = [c / b for (_, c), (_, b) in zip(runs, baseline, strict=True) if b]
        out["x_nginx"] = statistics.median(ratios)
        out["x_nginx_spread"] = [min(ratios), max(ratios)]
    return out


def latency(target: Contender, rate: float, seconds: float) -> loadgen.Latencies:
    """One open-loop run at a fixed request rate."""
    return asyncio.run(loadgen.fixed_rate(target.port, CHAT, chat_request(target.model), rate, seconds))


def latency_summary(run: loadgen.Latencies) -> dict[str, float]:
    """Latency percentiles (µs) of pooled runs."""
    return {
        "p50": run.percentile(50) * 1e6,
        "p99": run.percentile(99) * 1e6,
        "p99.9": run.percentile(99.9) * 1e6,
        "achieved": run.sent / run.elapsed if run.elapsed else 0.0,
        "errors": run.errors,
    }


def stream_ttfb(target: Contender, count: int) -> loadgen.Latencies:
    """Time to the first streamed byte of `count` sequential requests on one connection."""
    body = chat_request(target.stream_model, stream=True)
    return asyncio.run(loadgen.ttfb(target.port, target.stream_path, body, count))


def ttfb_summary(run: loadgen.Latencies) -> dict[str, float]:
    return {"p50": run.percentile(50) * 1e6, "p99": run.percentile(99) * 1e6, "errors": run.errors}


def per_chunk(target: Contender, seconds: float) -> dict[str, float]:
    """CPU µs per relayed chunk: CPU per stream of 101 paced chunks minus CPU per stream of 1, over 100.
    Also whether the relay buffers: the first event of a 20 × 10 ms stream must arrive long before its end."""
    proc = target.proc

    def model_for(fault: str) -> str:
        return f"{target.sim_model}gpt-4o-mini@{fault}"

    cpu, events = {}, {}
    for chunks in (1, 100):
        body = chat_request(model_for(f"chunks={chunks},chunk_delay=0.001"), stream=True, max_tokens=400)
        before = proc.cpu()
        run = asyncio.run(loadgen.closed_loop(target.port, CHAT, body, 32, seconds))
        cpu[chunks] = (proc.cpu() - before) / max(run.sent, 1) * 1e6
        events[chunks] = run.events / max(run.sent, 1)
    slow = chat_request(model_for("chunks=20,chunk_delay=0.01"), stream=True, max_tokens=400)
    first = asyncio.run(loadgen.ttfb(target.port, CHAT, slow, 5))
    return {
        "cpu_us_per_chunk": (cpu[100] - cpu[1]) / max(events[100] - events[1], 1),
        "events_per_stream": events[100],
        "first_event_ms_of_200ms_stream": first.percentile(50) * 1e3,
    }


def cache_costs(plain: Contender, cached: Contender, count: int, rounds: int) -> dict[str, Any]:
    """CPU µs and latency (µs, p50 and p99) per request of the same deterministic request shape, sent in turn
    on one connection: `proxied` through `plain` (the cache off), `miss` through `cached` with a new question
    each time (looked up, sent upstream, stored), `hit` through `cached` with one question again and again.
    The three alternate in `rounds`, so a noisy stretch of a shared machine falls on each alike."""
    pooled = {name: loadgen.Latencies() for name in ("proxied", "miss", "hit")}
    cpu = dict.fromkeys(pooled, 0.0)
    per_round = max(count // rounds, 1)
    asyncio.run(loadgen.sequence(cached.port, CHAT, [cacheable_request(cached.model, -1)]))  # the hit's entry
    for round_ in range(rounds):
        fresh = range(round_ * per_round, (round_ + 1) * per_round)
        runs = {
            "proxied": (plain, [cacheable_request(plain.model, i) for i in fresh]),
            "miss": (cached, [cacheable_request(cached.model, i) for i in fresh]),
            "hit": (cached, [cacheable_request(cached.model, -1)] * per_round),
        }
        for name, (target, bodies) in runs.items():
            before = target.proc.cpu()
            pooled[name].merge(asyncio.run(loadgen.sequence(target.port, CHAT, bodies)))
            cpu[name] += target.proc.cpu() - before
    out: dict[str, Any] = {}
    for name, run in pooled.items():
        out[name] = {
            "cpu_us": cpu[name] / max(run.sent, 1) * 1e6,
            "p50": run.percentile(50) * 1e6,
            "p99": run.percentile(99) * 1e6,
            "errors": run.errors,
            "requests": run.sent,
        }
    proxied = out["proxied"]
    out["hit_cpu_x_proxied"] = out["hit"]["cpu_us"] / proxied["cpu_us"] if proxied["cpu_us"] else float("nan")
    out["miss_cpu_x_proxied"] = out["miss"]["cpu_us"] / proxied["cpu_us"] if proxied["cpu_us"] else float("nan")
    out["miss_added_p50_us"] = out["miss"]["p50"] - proxied["p50"]
    out["hit_p50_x_proxied"] = out["hit"]["p50"] / proxied["p50"] if proxied["p50"] else float("nan")
    return out
