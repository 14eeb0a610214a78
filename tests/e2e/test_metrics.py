"""Prometheus metrics on GET /metrics: what was answered, by whom, how fast, every try at a target, and
the breakers' states."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from sidestep.config.load import parse_config
from sidestep.errors import Attempt, ConfigError
from sidestep.observers.metrics import BUCKETS, Metrics
from sidestep.outcome import Exchange
from sidestep.routing.breaker import BreakerPolicy, Breakers
from sidestep.server.types import Request
from sidestep.testing import RunningSim, config_for, running_gateway
from tests.conftest import Sdk

MSG = [{"role": "user", "content": "count me"}]


def samples(text: str) -> dict[str, float]:
    """`name{labels}` → value, for every sample line of a Prometheus text page."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            found[series] = float(value)
    return found


async def test_metrics_count_requests_attempts_latency_and_breakers(sdk: Sdk, sims: dict[str, RunningSim]) -> None:
    routes = {"chat": ["primary/a@503", "backup/b"]}
    config = config_for(sims, routes, server={"metrics": True}, resilience={"breaker": {"failures": 1, "cooldown": 60}})
    async with running_gateway(config) as gw:
        client = sdk(gw.base_url)
        await client.chat.completions.create(model="chat", messages=MSG)  # primary fails, backup serves
        await client.chat.completions.create(model="chat", messages=MSG)  # primary's breaker is open now
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="no-such-route", messages=MSG)
        async with httpx.AsyncClient() as http:
            page = await http.get(f"{gw.url}/metrics")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = samples(page.text)
    served = 'sidestep_requests_total{endpoint="chat",status="200",provider="backup",model="b"}'
    assert got[served] == 2
    assert got['sidestep_requests_total{endpoint="chat",status="404",provider="",model=""}'] == 1
    attempts = 'sidestep_upstream_attempts_total{{provider="{}",model="{}",outcome="{}"}}'
    assert got[attempts.format("primary", "a@503", "503")] == 1  # then its breaker opened
    assert got[attempts.format("primary", "a@503", "skipped")] == 1
    assert got[attempts.format("backup", "b", "200")] == 2
    assert got['sidestep_request_duration_seconds_count{endpoint="chat"}'] == 3
    buckets = [got[f'sidestep_request_duration_seconds_bucket{{endpoint="chat",le="{b!r}"}}'] for b in BUCKETS]
    assert buckets == sorted(buckets)  # cumulative
    assert got['sidestep_request_duration_seconds_bucket{endpoint="chat",le="+Inf"}'] == 3
    assert got['sidestep_request_duration_seconds_sum{endpoint="chat"}'] > 0
    assert got['sidestep_breaker_state{provider="primary",model="a@503",key="primary#0"}'] == 2  # open
    assert got['sidestep_breaker_state{provider="backup",model="b",key="backup#0"}'] == 0  # closed
    assert not any(re.search(r'endpoint="other"', s) for s in got)  # the scrape itself is not traffic


async def test_metrics_are_off_unless_configured(sims: dict[str, RunningSim]) -> None:
    async with running_gateway(config_for(sims, {"chat": ["primary/a"]})) as gw, httpx.AsyncClient() as http:
        page = await http.get(f"{gw.url}/metrics")
    assert page.status_code == 404
    assert page.json()["error"]["code"] == "not_found"


def test_metrics_setting_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match=r"server\.metrics"):
        parse_config({"server": {"metrics": "yes"}, "providers": {"openai": {"api_key": "k"}}}, env={})


def test_label_sets_are_bounded() -> None:
    metrics = Metrics(Breakers(BreakerPolicy()), max_series=2)
    request = Request("POST", "/v1/chat/completions", "", {}, b"{}")
    for model in ("a", "b", "c", "d", "a"):
        metrics.observe(Exchange(request, "r", "chat", "openai", (), False, 0.0, {}, 200, "p", model))
    got = samples(metrics.render())
    assert got['sidestep_requests_total{endpoint="chat",status="200",provider="p",model="a"}'] == 2
    assert got['sidestep_requests_total{endpoint="chat",status="200",provider="p",model="other"}'] == 2  # c, d
    assert len([s for s in got if s.startswith("sidestep_requests_total")]) == 3
    assert got['sidestep_state_overflow_total{table="metric_series"}'] == 2  # c, d found the table full


def test_attempt_outcomes_are_a_status_or_what_happened() -> None:
    metrics = Metrics(Breakers(BreakerPolicy()))
    for status, reason in [(429, "rate limited"), (None, "headers timeout"), (None, "cancelled"), (None, "skipped: x")]:
        metrics.attempt(Attempt("p", "m", status, reason, 1.0))
    got = samples(metrics.render())
    outcomes = {s.split('outcome="')[1].split('"')[0] for s in got if s.startswith("sidestep_upstream_attempts_total")}
    assert outcomes == {"429", "error", "cancelled", "skipped"}


async def test_budgets_are_exported_as_spent_and_limit(sims: dict[str, RunningSim]) -> None:
    config = config_for(sims, {"chat": ["primary/gpt-sim"]}, server={"metrics": True})
    config["governance"] = {
        "pricing": {"gpt-sim": {"input": 1000.0, "output": 2000.0}},
        "teams": {"ops": {"budget_usd": 50, "budget_period": "weekly"}},
        "keys": {"k": {"key": "sk-k", "team": "ops", "budget_usd": 5}},
    }
    async with running_gateway(config) as gw:
        async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="sk-k", max_retries=0) as client:
            answer = await client.chat.completions.create(model="chat", messages=MSG)
        async with httpx.AsyncClient() as http:
            got = samples((await http.get(f"{gw.url}/metrics")).text)
    assert answer.usage is not None
    cost = (answer.usage.prompt_tokens * 1000 + answer.usage.completion_tokens * 2000) / 1e6
    assert got['sidestep_budget_spent_usd{scope="key:k",period="monthly"}'] == pytest.approx(cost)
    assert got['sidestep_budget_spent_usd{scope="team:ops",period="weekly"}'] == pytest.approx(cost)
    assert got['sidestep_budget_limit_usd{scope="key:k",period="monthly"}'] == 5
    assert got['sidestep_budget_limit_usd{scope="team:ops",period="weekly"}'] == 50


async def test_metrics_can_require_a_key(sims: dict[str, RunningSim]) -> None:
    config = config_for(sims, {"chat": ["primary/gpt-sim"]}, server={"metrics": True, "metrics_key": "env:MK"})
    config["governance"] = {
        "pricing": {"gpt-sim": {"input": 1, "output": 1}},
        "keys": {"a": {"key": "sk-a", "budget_usd": 5}},
    }
    gateway = running_gateway(parse_config(config, source="<test>", env={"MK": "scrape-me"}))
    async with gateway as gw, httpx.AsyncClient() as http:
        bare = await http.get(f"{gw.url}/metrics")
        wrong = await http.get(f"{gw.url}/metrics", headers={"authorization": "Bearer sk-a"})
        right = await http.get(f"{gw.url}/metrics", headers={"authorization": "Bearer scrape-me"})
        health = await http.get(f"{gw.url}/health")
    assert bare.status_code == wrong.status_code == 401 and "metrics_key" in bare.text
    assert "key:a" not in bare.text + wrong.text  # key names and spend stay behind the key
    assert right.status_code == 200 and 'sidestep_budget_limit_usd{scope="key:a",period="monthly"} 5.0' in right.text
    assert health.status_code == 200
