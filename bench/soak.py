"""Soak: drive failures and hostile input through a real gateway process and check that it stays flat.

    .venv/bin/python -m bench.soak                 # ~3 minutes (`make soak`)
    .venv/bin/python -m bench.soak --rounds 3 --per-round 200 --warmup 1   # a quick look
    .venv/bin/python -m bench.soak --mix hostile --rounds 6 --per-round 4000 --warmup 1   # one kind: who grows?

Two simulator processes and one gateway process (`sidestep sim`, `sidestep serve`) on loopback. Each round
sends a fixed mix, with a bounded number of clients:
- streams through a route whose primary drops every stream after three events (mid-stream failures), plain
  and with `mid_stream: continue`;
- chats to invented `provider/<model>` names, a new name every request (per-name state);
- hostile bodies: JSON nested 100k deep, broken JSON, unsafe model names (`../`, CR/LF, non-Latin-1), a body
  over `max_body_bytes`, 1 MB of chunked trailers.
After each round it reads the gateway's RSS and open file descriptors from /proc and the size of `/metrics`.
The warm-up rounds fill caches, pools and bounded tables (by default, as many rounds as the mix takes to name
5,000 models, the per-name tables' limit); from then on RSS, descriptors and `/metrics` must stay flat: the
verdict compares the last round with the first measured one. Exit 1 when they did not, or when
the gateway answered a hostile request with a 5xx or died.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx

from bench.procs import Proc, free_port, start, wait_http

__all__ = ["KINDS", "Limits", "Sample", "main", "soak", "warmup_rounds"]

_Job = Callable[[], Awaitable[str | list[str]]]
_BAD = (" 500", " 502", " 503", " 504", "timeout")  # what hostile input must never get
_CHAT = {"messages": [{"role": "user", "content": "Tell me a long story about failover"}]}


@dataclass(frozen=True, slots=True)
class Limits:
    """How much a resource may grow from the first measured round to the last."""

    rss_mb: float = 24.0
    fds: int = 16
    metrics_bytes: int = 64 * 1024


@dataclass(slots=True)
class Sample:
    round: int
    rss_mb: float
    fds: int
    metrics_bytes: int
    seconds: float
    statuses: Counter[str] = field(default_factory=Counter)


def _config(primary: int, backup: int, port: int) -> str:
    def provider(sim_port: int) -> dict[str, object]:
        return {"type": "openai", "base_url": f"http://127.0.0.1:{sim_port}/v1", "api_key": "soak"}

    config = {
        "server": {"host": "127.0.0.1", "port": port, "metrics": True, "max_body_bytes": 1 << 20},
        "providers": {"primary": provider(primary), "backup": provider(backup)},
        "routes": {
            "flaky": ["primary/a@drop_after=3", "backup/b"],
            "flaky-continue": {"fallback": ["primary/c@drop_after=3", "backup/d"], "mid_stream": "continue"},
        },
    }
    return json.dumps(config)  # JSON is YAML


async def _stream(client: httpx.AsyncClient, route: str) -> str:
    body = {**_CHAT, "model": route, "stream": True}
    tail = b""
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        async for piece in response.aiter_bytes():
            tail = (tail + piece)[-512:]
        broken = b'"error"' in tail or not tail.rstrip().endswith(b"[DONE]")
        return f"stream {route} {response.status_code}{' broken' if broken else ''}"


async def _invented(client: httpx.AsyncClient, index: int) -> str:
    response = await client.post("/v1/chat/completions", json={**_CHAT, "model": f"primary/invented-{index}"})
    return f"invented {response.status_code}"


def _hostile_bodies(index: int) -> list[tuple[str, bytes]]:
    deep = b'{"model": "flaky", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    names = ["../../admin/secret?x=", "evil\r\nx-forged: 1", "модель-" + str(index), "a b#c", "x" * 5000]
    bodies = [("deep", deep), ("broken", b'{"model": "flaky", "messages": [')]
    bodies += [("oversized", b'{"model": "flaky", "pad": "' + b"x" * (1 << 20) + b'"}')]
    for name in names:
        bodies.append(("name", json.dumps({**_CHAT, "model": f"primary/{name}"}).encode()))
    return bodies


async def _hostile(client: httpx.AsyncClient, index: int) -> list[str]:
    results = []
    for kind, body in _hostile_bodies(index):
        headers = {"content-type": "application/json"}
        try:
            response = await client.post("/v1/chat/completions", content=body, headers=headers)
        except httpx.TimeoutException:
            results.append(f"hostile-{kind} timeout")
        except httpx.TransportError:  # an oversized body is answered with 413 and the connection closed mid-send
            results.append(f"hostile-{kind} closed")
        else:
            results.append(f"hostile-{kind} {response.status_code}")
    return results


async def _trailers(port: int) -> str:
    """1 MB of chunked trailers after a small body: the header limit must refuse them, not buffer them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({**_CHAT, "model": "flaky"}).encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    writer.write(head + b"transfer-encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n")
    try:
        for _ in range(1024):
            writer.write(b"x-trailer: " + b"t" * 1000 + b"\r\n")
            await writer.drain()
        writer.write(b"\r\n")
        await writer.drain()
        status = (await asyncio.wait_for(reader.readline(), 10)).split(b" ")[1:2]
        return f"trailers {status[0].decode() if status else 'closed'}"
    except (ConnectionError, TimeoutError, IndexError):
        return "trailers closed"
    finally:
        writer.close()


async def _bounded(jobs: list[_Job], concurrency: int) -> Counter[str]:
    statuses: Counter[str] = Counter()
    queue = iter(jobs)

    async def worker() -> None:
        for job in queue:
            try:
                result = await job()
            except httpx.HTTPError as exc:
                result = f"client-error {type(exc).__name__}"
            statuses.update([result] if isinstance(result, str) else result)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


KINDS = ("streams", "continue", "invented", "hostile")
_NAME_CAP = 5_000  # the gateway's per-name tables (breakers, latency statistics, metric series) hold this many


def _kind(index: int) -> str:
    """Which traffic job `index` sends: a fixed mix, 4:2:3:1 in every ten."""
    kind = index % 10
    return KINDS[0] if kind < 4 else KINDS[1] if kind < 6 else KINDS[2] if kind < 9 else KINDS[3]


def _round_jobs(
    client: httpx.AsyncClient, port: int, start_index: int, count: int, kinds: frozenset[str] = frozenset(KINDS)
) -> list[_Job]:
    jobs: list[_Job] = []
    for index in range(start_index, start_index + count):
        kind = _kind(index)
        if kind not in kinds:
            continue
        if kind == "streams":
            jobs.append(partial(_stream, client, "flaky"))
        elif kind == "continue":
            jobs.append(partial(_stream, client, "flaky-continue"))
        elif kind == "invented":
            jobs.append(partial(_invented, client, index))
        elif index % 50 == 9:
            jobs.append(partial(_trailers, port))
        else:
            jobs.append(partial(_hostile, client, index))
    return jobs


def warmup_rounds(per_round: int, kinds: frozenset[str] = frozenset(KINDS)) -> int:
    """The first round to measure: the one after the per-name tables filled up. Every invented chat and
    every hostile job (its `модель-N` name) names a new model; until the tables are full they grow, by
    design, and the growth that must stop is what comes after."""
    names = sum(
        1
        for index in range(per_round)
        if (_kind(index) == "invented" or (_kind(index) == "hostile" and index % 50 != 9)) and _kind(index) in kinds
    )
    return -(-_NAME_CAP // names) if names else 1


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _metrics_size(client: httpx.AsyncClient) -> int:
    response = await client.get("/metrics")
    return len(response.content)


async def soak(
    gateway: Proc, port: int, rounds: int, per_round: int, concurrency: int, kinds: frozenset[str] = frozenset(KINDS)
) -> list[Sample]:
    samples = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
        for number in range(rounds):
            started = time.perf_counter()
            jobs = _round_jobs(client, port, number * per_round, per_round, kinds)
            statuses = await _bounded(jobs, concurrency)
            if gateway.popen.poll() is not None:
                raise SystemExit(f"soak: the gateway exited with {gateway.popen.returncode} in round {number}")
            size = await _metrics_size(client)
            sample = Sample(number, gateway.rss(), _fds(gateway.popen.pid), size, time.perf_counter() - started)
            sample.statuses = statuses
            samples.append(sample)
            print(
                f"round {number:3d}: {sample.seconds:6.1f} s  rss {sample.rss_mb:7.1f} MB  fds {sample.fds:4d}  "
                f"/metrics {size / 1024:8.1f} KiB",
                flush=True,
            )
    return samples


def verdict(samples: list[Sample], warmup: int, limits: Limits) -> list[str]:
    """What grew past its limit between the first measured round and the last; and every 5xx to hostile input."""
    first, last = samples[min(warmup, len(samples) - 1)], samples[-1]
    problems = []
    if last.rss_mb - first.rss_mb > limits.rss_mb:
        problems.append(f"RSS grew {first.rss_mb:.1f} → {last.rss_mb:.1f} MB")
    if last.fds - first.fds > limits.fds:
        problems.append(f"file descriptors grew {first.fds} → {last.fds}")
    if last.metrics_bytes - first.metrics_bytes > limits.metrics_bytes:
        problems.append(f"/metrics grew {first.metrics_bytes} → {last.metrics_bytes} bytes")
    totals: Counter[str] = Counter()
    for sample in samples:
        totals.update(sample.statuses)
    problems += [
        f"{count}x {what}" for what, count in totals.items() if what.startswith("hostile") and what.endswith(_BAD)
    ]
    return problems


def _start(tmp: str, name: str, *args: str) -> Proc:
    return start([sys.executable, "-m", "sidestep", *args], name, cpus=None, log=Path(tmp, f"{name}.log"))


def _free_ports(count: int) -> list[int]:
    return [free_port() for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=14)
    parser.add_argument("--per-round", type=int, default=4000)
    parser.add_argument("--warmup", type=int, help="rounds before the baseline (default: until the tables are full)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--mix", default=",".join(KINDS), help="the kinds of traffic to send (a comma list)")
    parser.add_argument("--json", type=Path, help="write the samples here")
    args = parser.parse_args(argv)
    kinds = frozenset(args.mix.split(","))
    if not kinds <= set(KINDS):
        parser.error(f"--mix takes {', '.join(KINDS)}")
    warmup = args.warmup if args.warmup is not None else warmup_rounds(args.per_round, kinds)
    if warmup >= args.rounds:
        parser.error(f"--rounds must exceed the warm-up ({warmup} rounds fill the per-name tables)")
    print(f"soak: {args.rounds} rounds of {args.per_round}, measured from round {warmup}", flush=True)
    primary_port, backup_port, port = _free_ports(3)
    with tempfile.TemporaryDirectory(prefix="sidestep-soak-") as tmp:
        config = Path(tmp, "soak.yaml")
        config.write_text(_config(primary_port, backup_port, port))
        procs = [
            _start(tmp, "primary", "sim", "--port", str(primary_port), "--name", "primary"),
            _start(tmp, "backup", "sim", "--port", str(backup_port), "--name", "backup"),
        ]
        gateway = _start(tmp, "gateway", "serve", "--config", str(config))
        procs.append(gateway)
        try:
            for each, proc in zip((primary_port, backup_port, port), procs, strict=True):
                wait_http(each, "/health", 20, proc)
            samples = asyncio.run(soak(gateway, port, args.rounds, args.per_round, args.concurrency, kinds))
        finally:
            for proc in procs:
                proc.stop()
    if args.json:
        args.json.write_text(json.dumps([{**_plain(s)} for s in samples], indent=1))
    problems = verdict(samples, warmup, Limits())
    totals: Counter[str] = Counter()
    for sample in samples:
        totals.update(sample.statuses)
    for what, count in sorted(totals.items()):
        print(f"  {count:8d}  {what}")
    for problem in problems:
        print(f"soak: FAIL: {problem}")
    print("soak: " + ("FAIL" if problems else "flat: PASS"))
    return 1 if problems else 0


def _plain(sample: Sample) -> dict[str, object]:
    return {
        "round": sample.round,
        "rss_mb": sample.rss_mb,
        "fds": sample.fds,
        "metrics_bytes": sample.metrics_bytes,
        "seconds": sample.seconds,
        "statuses": dict(sample.statuses),
    }


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    raise SystemExit(main())
