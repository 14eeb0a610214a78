"""Test helpers users can use too: run simulators and a gateway on loopback for the length of a block.

```python
async with running_simulators("primary", "backup") as sims, running_gateway(config_for(sims, routes)) as gw:
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x")
```
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sidestep.app import Gateway
from sidestep.config.load import parse_config
from sidestep.config.model import Config
from sidestep.outcome import Observer
from sidestep.plugins.base import Plugin
from sidestep.plugins.capabilities import await_closed
from sidestep.serve import start_gateway
from sidestep.sim import Simulator, start_simulator

__all__ = [
    "FakeClock",
    "RunningGateway",
    "RunningSim",
    "config_for",
    "openai_client",
    "running_gateway",
    "running_simulators",
]

_CLOSE_WAIT = 30.0  # seconds a closed gateway's plugins get to finish stopping (a stdio MCP server: ~2 s at most)


class FakeClock:
    """A monotonic clock that moves only when told to; `sleep` advances it instead of waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass(slots=True)
class RunningSim:
    sim: Simulator
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@dataclass(slots=True)
class RunningGateway:
    gateway: Gateway
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@asynccontextmanager
async def running_simulators(
    *names: str, api_keys: Mapping[str, list[str]] | None = None
) -> AsyncIterator[dict[str, RunningSim]]:
    async with AsyncExitStack() as stack:
        sims: dict[str, RunningSim] = {}
        for index, name in enumerate(names):
            keys = (api_keys or {}).get(name)
            sim = Simulator(name=name, seed=index, api_keys=keys)
            server = await start_simulator(sim)
            stack.push_async_callback(server.close)
            sims[name] = RunningSim(sim, server.port)
        yield sims


def config_for(
    sims: Mapping[str, RunningSim],
    routes: Mapping[str, Any] | None = None,
    *,
    keys: Mapping[str, list[Any]] | None = None,
    timeouts: Mapping[str, float] | None = None,
    server: Mapping[str, Any] | None = None,
    resilience: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A config dict with one OpenAI-type provider per simulator (named like the simulator)."""
    providers: dict[str, Any] = {}
    for name, running in sims.items():
        entry: dict[str, Any] = {"type": "openai", "base_url": running.base_url}
        if keys and name in keys:
            entry["keys"] = keys[name]
        else:
            entry["api_key"] = f"key-{name}"
        if timeouts:
            entry["timeouts"] = dict(timeouts)
        providers[name] = entry
    config = {"server": dict(server or {}), "providers": providers, "routes": dict(routes or {})}
    if resilience:
        config["resilience"] = dict(resilience)
    return config


@asynccontextmanager
async def running_gateway(
    config: Config | Mapping[str, Any],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    wall_clock: Callable[[], float] = time.time,
    plugins: Sequence[Plugin] = (),
    observers: Sequence[Observer] = (),
    rng: random.Random | None = None,
) -> AsyncIterator[RunningGateway]:
    """A gateway serving `config` on a free loopback port; `plugins` and `observers` (your own, in code)
    come before the ones the config turns on."""
    if not isinstance(config, Config):
        config = parse_config(dict(config), source="<test>", env={})
    server, gateway, client = await start_gateway(
        config,
        host="127.0.0.1",
        port=0,
        clock=clock,
        sleep=sleep,
        wall_clock=wall_clock,
        plugins=plugins,
        observers=observers,
        rng=rng,
    )
    try:
        yield RunningGateway(gateway, server.port)
    finally:
        await server.close()
        await await_closed(gateway.capabilities.closers, _CLOSE_WAIT)  # stdio MCP servers reaped
        await client.aclose()


def openai_client(base_url: str) -> Any:
    """The official OpenAI SDK pointed at a gateway, with its own retries off so failover is the gateway's."""
    import openai  # a dev/test dependency, imported only when asked for

    return openai.AsyncOpenAI(base_url=base_url, api_key="client-key", max_retries=0, timeout=20)
