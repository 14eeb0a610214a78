"""Per-name state stays bounded whatever model names clients invent: breakers, latency statistics and
metric label sets have caps, what overflows is counted, and a model the provider rejects leaves nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from sidestep.errors import Attempt
from sidestep.observers.metrics import Metrics
from sidestep.routing.breaker import BreakerPolicy, Breakers
from sidestep.routing.strategies import TargetStats
from sidestep.sim import Simulator, start_simulator
from sidestep.testing import RunningSim, config_for, running_gateway
from tests.sim_helpers import MSG


@pytest.fixture
async def strict() -> AsyncIterator[dict[str, RunningSim]]:
    """A provider that serves `gpt-sim` only and answers 404 for any other model, as OpenAI does."""
    sim = Simulator(name="strict", models=["gpt-sim"])
    server = await start_simulator(sim)
    try:
        yield {"strict": RunningSim(sim, server.port)}
    finally:
        await server.close()


def series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


async def test_invented_models_the_provider_rejects_leave_no_state(strict: dict[str, RunningSim]) -> None:
    config = config_for(strict, {"chat": ["strict/gpt-sim"]}, server={"metrics": True})
    async with running_gateway(config) as gw, httpx.AsyncClient(timeout=20) as http:
        url = f"{gw.base_url}/chat/completions"
        ok = await http.post(url, json={"model": "chat", "messages": MSG})
        before = series((await http.get(f"{gw.url}/metrics")).text)

        async def invent(n: int) -> int:
            answer = await http.post(url, json={"model": f"strict/made-up-{n}", "messages": MSG})
            return answer.status_code

        statuses = [
            status
            for batch in range(6)
            for status in await asyncio.gather(*(invent(batch * 50 + n) for n in range(50)))
        ]
        after = series((await http.get(f"{gw.url}/metrics")).text)
        breakers = gw.gateway.state.breakers.states()
        again = await http.post(url, json={"model": "chat", "messages": MSG})
    assert ok.status_code == 200 and again.status_code == 200
    assert set(statuses) == {404}  # no target knows it: a client error, not a 502
    assert list(breakers) == [("strict", "strict#0", "gpt-sim")]  # only the served model has a breaker
    grown = [line for line in after if line not in before and "made-up" in line]
    assert grown == []  # no series per invented name
    assert len(after) <= len(before) + 25  # the rejected attempts and requests counted, under "other"


def test_breakers_are_capped_and_evictions_counted() -> None:
    breakers = Breakers(BreakerPolicy(failure_threshold=1), limit=100)
    breakers.get("p", "k", "opened").record_failure(0.0)  # open: never evicted for room
    for n in range(1_000):
        breakers.get("p", "k", f"m{n}").record_success(1.0)
    states = breakers.states()
    assert len(states) <= 100 and states[("p", "k", "opened")] == "open"
    assert breakers.overflow >= 900


def test_latency_statistics_are_capped() -> None:
    stats = TargetStats(limit=100)
    stats.started("busy")  # in flight: kept
    for n in range(1_000):
        stats.observe(f"p/m{n}", 10.0)
    assert stats.size <= 100 and stats.outstanding("busy") == 1 and stats.overflow >= 900


def test_overflow_of_every_table_is_exported() -> None:
    breakers, stats = Breakers(BreakerPolicy(), limit=1), TargetStats(limit=1)
    metrics = Metrics(breakers, stats=stats, configured=lambda label: label == "p/known")
    breakers.get("p", "k", "a").record_failure(0.0)
    breakers.get("p", "k", "b").record_failure(0.0)  # the table is full of a breaker that stays: b is not kept
    stats.started("p/a")
    stats.started("p/b")
    metrics.attempt(Attempt("p", "invented", 404, "no such model", 1.0))
    metrics.attempt(Attempt("p", "known", 404, "gone", 1.0))
    text = metrics.render()
    assert 'sidestep_state_overflow_total{table="breakers"} 1' in text
    assert 'sidestep_state_overflow_total{table="latency_stats"} 1' in text
    assert 'model="other",outcome="404"} 1' in text and 'model="known",outcome="404"} 1' in text
    assert "invented" not in text
