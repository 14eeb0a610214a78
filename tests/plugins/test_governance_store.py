"""Budget spend in a SQLite file: shared by workers (two stores on one file stand in for two processes),
kept across restarts, written off the request path, and never lost when a flush fails."""

from __future__ import annotations

import asyncio
import calendar
import logging
import sqlite3
from pathlib import Path

import openai
import pytest

from sidestep.app import Gateway
from sidestep.config.load import parse_config
from sidestep.config.model import Limits
from sidestep.errors import ConfigError
from sidestep.plugins.governance.limits import Scope
from sidestep.plugins.governance.store import SpendStore
from sidestep.testing import config_for, running_gateway, running_simulators
from sidestep.transport.fake import FakeResponse, FakeTransport
from tests.sim_helpers import MSG

T0 = float(calendar.timegm((2026, 11, 25, 10, 0, 0)))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def sdk(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key="sk-k", max_retries=0)


def team(budget: float = 10.0, period: str = "daily") -> Scope:
    return Scope("team 'ops'", Limits(budget_usd=budget, budget_period=period), "team:ops")


async def test_two_workers_share_spend_through_the_file(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "spend.db"
    a_scope, b_scope = team(), team()
    a = SpendStore(path, [a_scope], clock=clock)
    b = SpendStore(path, [b_scope], clock=clock)
    a_scope.spend.add(clock.now, 3.0)
    b_scope.spend.add(clock.now, 4.0)
    await a.flush()
    await b.flush()  # b writes its 4 and reads a's 3
    assert b_scope.spend.spent(clock.now) == pytest.approx(7.0)
    a_scope.spend.add(clock.now, 0.5)  # spent while a's next flush is due: counted on top of the total
    await a.flush()
    assert a_scope.spend.spent(clock.now) == pytest.approx(7.5)
    a.close()
    b.close()
    restarted_scope = team()
    restarted = SpendStore(path, [restarted_scope], clock=clock)
    restarted.load()
    assert restarted_scope.spend.spent(clock.now) == pytest.approx(7.5)  # a restart keeps the day's spend
    clock.now += 86400
    restarted.load()
    assert restarted_scope.spend.spent(clock.now) == 0  # a new day, a new budget
    restarted.close()


class FailingOnce(SpendStore):
    """A store whose file fails at the next flush (full disk, say), then works again."""

    fail = True

    def _exchange(self, deltas, starts):  # type: ignore[no-untyped-def]
        if self.fail:
            self.fail = False
            raise sqlite3.OperationalError("database or disk is full")
        return super()._exchange(deltas, starts)


async def test_a_failed_flush_keeps_the_spend_for_the_next(tmp_path: Path) -> None:
    clock = Clock()
    scope = team()
    store = FailingOnce(tmp_path / "spend.db", [scope], clock=clock)
    scope.spend.add(clock.now, 2.0)
    with pytest.raises(sqlite3.OperationalError):
        await store.flush()
    assert scope.spend.spent(clock.now) == pytest.approx(2.0)
    await store.flush()
    store.close()
    check = team()
    reader = SpendStore(tmp_path / "spend.db", [check], clock=clock)
    reader.load()
    assert check.spend.spent(clock.now) == pytest.approx(2.0)  # written once, not lost, not doubled
    reader.close()


async def test_budgets_survive_a_gateway_restart(tmp_path: Path) -> None:
    store = tmp_path / "spend.db"
    async with running_simulators("primary") as sims:
        config = config_for(sims, {"chat": ["primary/gpt-sim"]})
        config["governance"] = {
            "store": str(store),
            "pricing": {"gpt-sim": {"input": 1000.0, "output": 2000.0}},
            "keys": {"k": {"key": "sk-k", "budget_usd": 0.001}},  # one answer spends it
        }
        async with running_gateway(config) as gw, sdk(gw.base_url) as client:
            await client.chat.completions.create(model="chat", messages=MSG)
        async with running_gateway(config) as gw, sdk(gw.base_url) as client:  # restarted: flushed at shutdown
            with pytest.raises(openai.RateLimitError) as refused:
                await client.chat.completions.create(model="chat", messages=MSG)
    assert refused.value.code == "insufficient_quota"


def test_a_store_that_cannot_be_opened_is_a_config_error(tmp_path: Path) -> None:
    bad = parse_config(
        {"governance": {"store": str(tmp_path / "missing" / "spend.db"), "keys": {"k": {"key": "sk-k"}}}},
        source="gw.yaml",
        env={},
    )
    with pytest.raises(ConfigError, match=r"gw.yaml: governance.store: cannot use the spend store"):
        Gateway(bad, FakeTransport(lambda request: FakeResponse()))
    with pytest.raises(ConfigError, match=r"governance.store: expected a SQLite file path"):
        parse_config({"governance": {"store": "redis://localhost"}}, source="gw.yaml", env={})


async def test_spend_is_flushed_in_the_background(tmp_path: Path) -> None:
    clock = Clock()
    writer_scope, reader_scope = team(), team()
    writer = SpendStore(tmp_path / "spend.db", [writer_scope], interval=0.02, clock=clock)
    reader = SpendStore(tmp_path / "spend.db", [reader_scope], interval=0.02, clock=clock)
    writer.start()
    reader.start()
    writer_scope.spend.add(clock.now, 1.25)
    for _ in range(200):
        if reader_scope.spend.spent(clock.now):
            break
        await asyncio.sleep(0.01)
    writer.close()
    reader.close()
    assert reader_scope.spend.spent(clock.now) == pytest.approx(1.25)


async def test_a_failing_file_is_logged_once_then_recovers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sidestep")  # other tests may have raised the CLI's level
    clock = Clock()
    scope = team()
    store = FailingOnce(tmp_path / "spend.db", [scope], interval=0.01, clock=clock)
    scope.spend.add(clock.now, 3.0)
    store.start()
    for _ in range(300):
        if "spend_store_recovered" in caplog.text:
            break
        await asyncio.sleep(0.01)
    store.close()
    assert caplog.text.count("event=spend_store_failed") == 1 and "database or disk is full" in caplog.text
    assert "event=spend_store_recovered" in caplog.text
    reader_scope = team()
    reader = SpendStore(tmp_path / "spend.db", [reader_scope], clock=clock)
    reader.load()
    assert reader_scope.spend.spent(clock.now) == pytest.approx(3.0)
    reader.close()
