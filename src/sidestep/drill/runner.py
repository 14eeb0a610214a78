"""`sidestep drill`'s engine: the user's config with every provider swapped for a simulator playing the
scenario, a real gateway in front, open-loop traffic through every route, and a verdict.

Provider keys are never needed (a drill never leaves the machine): `env:VAR` keys resolve to a
placeholder when the variable is unset, and the simulators accept any key.

A drill runs any real config without touching what the config's gateway owns: with virtual keys, the
traffic carries a key generated for the drill (no limits, any model); access and request logs and the
spend store go to a private temporary directory, removed afterwards. Each route gets the operation it
serves: embeddings when every target is an embedding model (its name says `embed`), chat otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AsyncExitStack
from typing import Any

import msgspec

from sidestep.config.load import parse_config, read_yaml
from sidestep.config.model import Config, RouteNode, Secret, VirtualKey
from sidestep.drill.report import DrillReport, Outcome, RouteSummary, healthy_during
from sidestep.drill.scenarios import DrillScenario, primary_providers, route_providers, route_targets
from sidestep.serve import start_gateway
from sidestep.sim import Simulator, start_simulator
from sidestep.sim.faults import Scenario
from sidestep.transport.body import read_all
from sidestep.transport.client import HttpClient
from sidestep.transport.types import Timeouts, UpstreamRequest

__all__ = ["DrillEnv", "drill_config", "load_drill_config", "private_config", "route_operation", "run_drill"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class DrillEnv(Mapping[str, str]):
    """The process environment, where the config's unset `env:VAR` keys read as a placeholder."""

    def __init__(self, referenced: Iterable[str], base: Mapping[str, str] | None = None) -> None:
        self._base = os.environ if base is None else base
        self._referenced = frozenset(referenced)

    def __getitem__(self, key: str) -> str:
        value = self._base.get(key)
        if value:
            return value
        if key in self._referenced:
            return "sk-drill-placeholder"
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)


def env_references(data: Any) -> Iterator[str]:
    """Every VAR named as `env:VAR` anywhere in raw config data."""
    if isinstance(data, str) and data.startswith("env:"):
        yield data[4:].strip()
    elif isinstance(data, dict):
        for value in data.values():
            yield from env_references(value)
    elif isinstance(data, list):
        for value in data:
            yield from env_references(value)


def drill_config(data: Mapping[str, Any], source: str) -> Config:
    return parse_config(dict(data), source=source, env=DrillEnv(env_references(data)))


def load_drill_config(path: str) -> Config:
    data = read_yaml(path)
    return parse_config(data, source=path, env=DrillEnv(env_references(data)))


async def run_drill(
    config: Config,
    scenario: DrillScenario,
    *,
    duration: float = 10.0,
    rate: float = 20.0,
    stream_share: float = 0.5,
    routes: list[str] | None = None,
) -> DrillReport:
    names = routes or list(config.routes)
    unknown = [n for n in names if n not in config.routes]
    if unknown:
        raise ValueError(f"unknown route(s) {', '.join(unknown)} (known: {', '.join(config.routes) or 'none'})")
    if not names:
        raise ValueError(f"{config.source}: the config has no routes to drill")
    primaries = primary_providers(config)
    plays = {name: scenario.for_provider(p, primaries) for name, p in config.providers.items()}
    async with AsyncExitStack() as stack:
        sims: dict[str, Simulator] = {}
        ports: dict[str, int] = {}
        for index, name in enumerate(config.providers):
            sims[name] = Simulator(name=name, seed=index)
            server = await start_simulator(sims[name])
            stack.push_async_callback(server.close)
            ports[name] = server.port
        private = stack.enter_context(tempfile.TemporaryDirectory(prefix="sidestep-drill-"))
        drilled, key = private_config(_pointed_at(config, ports), private)
        gateway, _app, upstream = await start_gateway(drilled, host="127.0.0.1", port=0)
        stack.push_async_callback(upstream.aclose)
        stack.push_async_callback(gateway.close)
        client = HttpClient(proxy_from_env=False)
        stack.push_async_callback(client.aclose)
        operations = {name: route_operation(config.routes[name]) for name in names}
        driver = _Driver(client, gateway.port, stream_share, operations, key)
        baseline = await driver.baseline(names)
        for name, sim in sims.items():
            sim.scenario = plays[name]
            sim.reset()
        outcomes = await driver.run(names, duration, rate)
    return _judge(config, scenario, plays, names, outcomes, duration, baseline)


def _pointed_at(config: Config, ports: Mapping[str, int]) -> Config:
    providers = {
        name: dataclasses.replace(p, base_url=f"http://127.0.0.1:{ports[name]}") for name, p in config.providers.items()
    }
    return dataclasses.replace(config, providers=providers)


def private_config(config: Config, directory: str) -> tuple[Config, str | None]:
    """The config as a drill serves it: its logs and spend store in `directory`, never the config's own
    files, and — when governance is on — a virtual key made for the drill (returned) that governance admits."""
    server = config.server
    access, request = (
        None if getattr(server, name) is None else os.path.join(directory, f"{name}.jsonl")
        for name in ("access_log", "request_log")
    )
    governance = config.governance
    if governance.store is not None:
        governance = dataclasses.replace(governance, store=os.path.join(directory, "spend.db"))
    key = None
    if governance.enabled:
        key = f"sk-drill-{secrets.token_hex(16)}"
        drill_key = VirtualKey(name=f"sidestep-drill-{key[-6:]}", secret=Secret(key, "drill"))
        governance = dataclasses.replace(governance, keys=(*governance.keys, drill_key))
    return dataclasses.replace(
        config, server=dataclasses.replace(server, access_log=access, request_log=request), governance=governance
    ), key


def route_operation(node: RouteNode) -> str:
    """ "embeddings" when every target of the route is an embedding model, else "chat"."""
    return "embeddings" if all("embed" in target.model.lower() for target in route_targets(node)) else "chat"


def _judge(
    config: Config,
    scenario: DrillScenario,
    plays: Mapping[str, Scenario],
    names: list[str],
    outcomes: list[Outcome],
    duration: float,
    baseline: float,
) -> DrillReport:
    summaries = {name: RouteSummary(name) for name in names}
    lost: list[tuple[Outcome, list[str]]] = []
    for outcome in outcomes:
        summaries[outcome.route].outcomes.append(outcome)
        if outcome.ok:
            continue
        candidates = sorted(route_providers(config.routes[outcome.route]))
        healthy = [p for p in candidates if healthy_during(plays[p], outcome.start, outcome.end)]
        if healthy:
            lost.append((outcome, healthy))
    untouched = not any(play.rules for play in plays.values())
    return DrillReport(scenario, duration, baseline, summaries, untouched, lost)


class _Driver:
    def __init__(
        self, client: HttpClient, port: int, stream_share: float, operations: Mapping[str, str], key: str | None
    ) -> None:
        self._client = client
        self._base = f"http://127.0.0.1:{port}/v1"
        self._share = stream_share
        self._operations = operations
        self._headers = [("content-type", "application/json")]
        if key is not None:
            self._headers.append(("authorization", f"Bearer {key}"))
        self._started = time.monotonic()

    async def baseline(self, routes: list[str], per_route: int = 5) -> float:
        """Median latency (ms) of healthy requests, so the report can show what the scenario added."""
        self._started = time.monotonic()
        samples = [await self.one(i, route) for route in routes for i in range(per_route)]
        good = sorted(o.millis for o in samples if o.ok)
        return good[len(good) // 2] if good else 0.0

    async def run(self, routes: list[str], duration: float, rate: float) -> list[Outcome]:
        """Open loop: request i leaves at i / rate whatever earlier ones are doing."""
        self._started = time.monotonic()
        total = max(1, int(duration * rate))
        tasks = []
        for number in range(total):
            delay = self._started + number / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(self.one(number, routes[number % len(routes)])))
        return list(await asyncio.gather(*tasks))

    async def one(self, number: int, route: str) -> Outcome:
        text = f"drill request {number}"
        body: dict[str, Any]
        if self._operations.get(route) == "embeddings":
            stream, url, body = False, f"{self._base}/embeddings", {"model": route, "input": text}
        else:
            stream = int((number + 1) * self._share) > int(number * self._share)
            url = f"{self._base}/chat/completions"
            body = {"model": route, "messages": [{"role": "user", "content": text}], "stream": stream}
        request = UpstreamRequest("POST", url, self._headers, _encode(body), Timeouts(5, 900, 900))
        start = time.monotonic() - self._started
        try:
            async with await self._client.send(request) as response:
                raw = await read_all(response)
                status, headers = response.status, response.headers
        except Exception as exc:  # the drill reports every way a request can fail, never crashes on one
            end = time.monotonic() - self._started
            return Outcome(number, route, stream, start, end, 0, None, 0, f"client error: {exc}")
        end = time.monotonic() - self._started
        provider = headers.get("x-sidestep-provider") or _comment_field(raw, "provider")
        attempts = int(headers.get("x-sidestep-attempts") or _comment_field(raw, "attempts") or 0)
        failure = _failure(status, raw, stream)
        if failure is None and "input" in body and b'"embedding"' not in raw:  # a 200 without an answer
            failure = "no embeddings in the answer"
        return Outcome(number, route, stream, start, end, status, provider, attempts, failure)


def _comment_field(raw: bytes, name: str) -> str | None:
    """A stream committed before its first token names its provider in an SSE comment instead of headers."""
    marker = b": sidestep "
    at = raw.find(marker)
    if at < 0:
        return None
    line = raw[at + len(marker) : raw.find(b"\n", at)].decode("utf-8", "replace")
    fields = dict(part.partition("=")[::2] for part in line.split())
    return fields.get(name)


def _failure(status: int, raw: bytes, stream: bool) -> str | None:
    if status != 200:
        return f"HTTP {status}: {_message(raw)}"
    if not stream:
        return None
    for line in raw.split(b"\n"):
        if line.startswith(b"data: {") and b'"error"' in line[:16]:
            return f"stream error: {_message(line[6:])}"
    if b"data: [DONE]" not in raw:
        return "stream ended without [DONE]"
    return None


def _message(raw: bytes) -> str:
    try:
        data = _decode(raw)
    except msgspec.DecodeError:
        return raw[:200].decode("utf-8", "replace")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", ""))[:300]
    return str(data)[:200]
