"""`sidestep demo`: an offline failover show, start to finish in one command.

Three simulated providers — `primary` (healthy, then a full outage midway, then back), `flaky` (a share
of 429s with Retry-After) and `backup` (steady, a little slower) — sit behind a real gateway on loopback
with the route `demo-chat`: primary first, then a weighted group of flaky and backup. A stream of
requests (half of them streaming) goes through; the terminal shows live who served each one, the
failovers and the success rate.

The run is paced for a person (~25 s: each third of it — healthy, outage, recovery — lasts long enough to
watch); `--fast` runs it in a second or two for CI. The gateway's own log (failovers, breaker changes) goes
to a file of its own, never under the live screen.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from sidestep.config.load import parse_config
from sidestep.loop import run_async
from sidestep.serve import start_gateway
from sidestep.sim import Simulator, start_simulator
from sidestep.transport.body import read_all
from sidestep.transport.client import HttpClient
from sidestep.transport.types import Timeouts, UpstreamRequest

__all__ = ["DemoResult", "add_parser", "demo_config", "pace_for", "run_demo"]

ROUTE = "demo-chat"


@dataclass(slots=True)
class Outcome:
    number: int
    status: int
    provider: str
    attempts: int
    millis: float
    stream: bool


@dataclass(slots=True)
class DemoResult:
    total: int = 0
    ok: int = 0
    failovers: int = 0
    served_by: Counter[str] = field(default_factory=Counter)
    recent: deque[Outcome] = field(default_factory=lambda: deque(maxlen=12))
    phase: str = "primary healthy"
    plain: bool = False

    @property
    def success_rate(self) -> float:
        return self.ok / self.total if self.total else 1.0


PACE = 0.6  # seconds between one client's requests: 120 requests over 3 clients take ~25 s
FAST_PACE = 0.01


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("demo", help="offline failover demo against simulated providers")
    parser.add_argument("--requests", type=int, default=120, help="how many requests to send (default 120)")
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument(
        "--pace", type=float, help=f"seconds between requests per client (default {PACE}, {FAST_PACE} with --fast)"
    )
    parser.add_argument("--fast", action="store_true", help="no pause between requests (CI): done in a second or two")
    parser.add_argument("--plain", action="store_true", help="print lines instead of a live screen")
    parser.add_argument(
        "--log", help="where the gateway's own log goes (default: sidestep-demo.log in the temporary directory)"
    )
    parser.set_defaults(func=_cmd_demo)


def pace_for(fast: bool, pace: float | None) -> float:
    if pace is not None:
        return pace
    return FAST_PACE if fast else PACE


def _cmd_demo(args: argparse.Namespace) -> int:
    log = args.log or os.path.join(tempfile.gettempdir(), "sidestep-demo.log")
    pace = pace_for(args.fast, args.pace)
    with _logging_to(log):
        return run_async(_demo_main(args.requests, args.concurrency, pace, args.plain, log))


@contextmanager
def _logging_to(path: str) -> Iterator[None]:
    """The gateway's log in a file of its own while the demo runs: on stderr it would tear the live screen."""
    logger = logging.getLogger("sidestep")
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        handler.close()


async def _demo_main(requests: int, concurrency: int, pace: float, plain: bool, log: str) -> int:
    console = Console()
    result = await run_demo(requests=requests, concurrency=concurrency, pace=pace, console=console, live=not plain)
    if plain:  # the live screen's last frame shows the summary already
        console.print(_summary(result))
    console.print(f"gateway log: {log}", markup=False, soft_wrap=True)
    return 0 if result.ok == result.total else 1


async def run_demo(
    *, requests: int = 90, concurrency: int = 3, pace: float = 0.08, console: Console | None = None, live: bool = False
) -> DemoResult:
    sims = {
        "primary": Simulator(name="primary", seed=1),
        "flaky": Simulator(name="flaky", seed=2),
        "backup": Simulator(name="backup", seed=3),
    }
    sims["flaky"].set_fault("status=429,retry_after=1,rate=0.35")
    sims["backup"].set_fault("latency=0.02")
    servers = {name: await start_simulator(sim) for name, sim in sims.items()}
    config = parse_config(demo_config({name: server.port for name, server in servers.items()}), source="<demo>")
    gateway, _app, upstream = await start_gateway(config, host="127.0.0.1", port=0)
    client = HttpClient(proxy_from_env=False)
    result = DemoResult(plain=console is not None and not live)
    try:
        await _drive(client, gateway.port, sims["primary"], result, requests, concurrency, pace, console, live)
    finally:
        await client.aclose()
        await gateway.close()
        await upstream.aclose()
        for server in servers.values():
            await server.close()
    return result


def demo_config(ports: dict[str, int]) -> dict[str, Any]:
    """The demo's gateway config; `sidestep drill` uses it too when no config file is given."""
    kinds = {"primary": "openai", "flaky": "groq", "backup": "mistral"}
    providers = {
        name: {"type": kind, "base_url": f"http://127.0.0.1:{ports.get(name, 9)}/v1", "api_key": f"demo-{name}"}
        for name, kind in kinds.items()
    }
    route = {
        "fallback": ["primary/gpt-4o-mini", {"loadbalance": ["flaky/llama-3.1-8b", "backup/mistral-small"]}],
        "timeouts": {"first_token": 1.0},
    }
    # A short breaker cooldown so the primary's recovery shows within the demo's few seconds.
    resilience = {"breaker": {"failures": 3, "cooldown": 1.0}}
    return {"providers": providers, "routes": {ROUTE: route}, "resilience": resilience}


async def _drive(
    client: HttpClient,
    port: int,
    primary: Simulator,
    result: DemoResult,
    requests: int,
    concurrency: int,
    pace: float,
    console: Console | None,
    live: bool,
) -> None:
    counter = iter(range(1, requests + 1))

    async def worker() -> None:
        for number in counter:
            _set_phase(primary, result, number, requests)
            outcome = await _one_request(client, port, number)
            _record(result, outcome)
            if console is not None and not live:
                console.print(_line(outcome, result))
            await asyncio.sleep(pace)

    workers = [worker() for _ in range(concurrency)]
    if console is None or not live:
        await asyncio.gather(*workers)
        return
    with Live(_screen(result), console=console, refresh_per_second=8) as screen:
        task = asyncio.gather(*workers)
        while not task.done():
            screen.update(_screen(result))
            await asyncio.sleep(0.1)
        await task
        screen.update(_screen(result))
    if not console.is_terminal:  # a terminal's live screen ends its last line itself
        console.line()


def _set_phase(primary: Simulator, result: DemoResult, number: int, total: int) -> None:
    """Primary goes down for the middle third of the run, then recovers."""
    if number == total // 3 + 1:
        primary.set_fault("status=503")
        result.phase = "primary OUTAGE (503 on every request)"
    elif number == 2 * total // 3 + 1:
        primary.set_fault(None)
        result.phase = "primary recovered"
    else:
        return
    if result.plain:
        print(f"--- {result.phase} ---", flush=True)


async def _one_request(client: HttpClient, port: int, number: int) -> Outcome:
    stream = number % 2 == 0
    body = {
        "model": ROUTE,
        "messages": [{"role": "user", "content": f"Request {number}: say something about failover."}],
        "stream": stream,
    }
    request = UpstreamRequest(
        "POST",
        f"http://127.0.0.1:{port}/v1/chat/completions",
        [("content-type", "application/json")],
        msgspec.json.encode(body),
        Timeouts(connect=5, headers=30, read=30),
    )
    started = time.perf_counter()
    async with await client.send(request) as response:
        await read_all(response)
        headers = response.headers
    millis = (time.perf_counter() - started) * 1000
    provider = headers.get("x-sidestep-provider", "-")
    return Outcome(number, response.status, provider, int(headers.get("x-sidestep-attempts", "0")), millis, stream)


def _record(result: DemoResult, outcome: Outcome) -> None:
    result.total += 1
    if outcome.status == 200:
        result.ok += 1
        result.served_by[outcome.provider] += 1
    if outcome.attempts > 1:
        result.failovers += 1
    result.recent.append(outcome)


def _line(outcome: Outcome, result: DemoResult) -> str:
    kind = "stream" if outcome.stream else "json  "
    note = f"  failover ({outcome.attempts} attempts)" if outcome.attempts > 1 else ""
    return f"#{outcome.number:<4} {kind} {outcome.status} {outcome.provider:<8} {outcome.millis:6.1f} ms{note}"


def _screen(result: DemoResult) -> Group:
    table = Table(title="Latest requests", expand=True)
    for column in ("#", "kind", "status", "served by", "attempts", "ms"):
        table.add_column(column)
    for o in result.recent:
        style = "green" if o.status == 200 else "red"
        attempts = f"[yellow]{o.attempts}[/]" if o.attempts > 1 else str(o.attempts)
        kind = "stream" if o.stream else "json"
        table.add_row(str(o.number), kind, f"[{style}]{o.status}[/]", o.provider, attempts, f"{o.millis:.1f}")
    return Group(Panel(f"phase: [bold]{result.phase}[/]"), table, _summary(result))


def _summary(result: DemoResult) -> Panel:
    shares = ", ".join(f"{name}: {count}" for name, count in sorted(result.served_by.items())) or "-"
    rate = result.success_rate * 100
    colour = "green" if result.ok == result.total else "red"
    return Panel(
        f"requests: {result.total}   success: [{colour}]{rate:.1f}%[/]   "
        f"failed over: {result.failovers}\nserved by: {shares}",
        title="sidestep demo",
    )
