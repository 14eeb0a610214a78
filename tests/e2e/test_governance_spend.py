"""Spend that must not escape a budget: streams the client abandons before their usage chunk, streams whose
upstream never reports usage, and bursts of concurrent requests against the last of a budget.

Over real HTTP with the official OpenAI SDK, the simulator as the upstream."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest

from sidestep.testing import RunningSim, config_for, running_gateway
from tests.sim_helpers import MSG, spent_by

Sims = dict[str, RunningSim]
PRICE = {"input": 1000.0, "output": 2000.0}  # USD per million tokens: a sim answer costs a few cents


def governed(sims: Sims, governance: dict[str, Any], route: str = "primary/gpt-sim") -> dict[str, Any]:
    config = config_for(sims, {"chat": [route]})
    config["governance"] = governance
    governance.setdefault("pricing", {})[route.partition("/")[2]] = PRICE  # the model a fault suffix names
    return config


def client(gw: Any, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, timeout=20, max_retries=0)


async def full_cost(sims: Sims) -> float:
    """What one complete answer to MSG costs, as the upstream reports it."""
    governance = {"pricing": {"gpt-sim": PRICE}, "keys": {"p": {"key": "sk-p", "budget_usd": 100}}}
    async with running_gateway(governed(sims, governance)) as gw, client(gw, "sk-p") as p:
        await p.chat.completions.create(model="chat", messages=MSG)
        return spent_by(gw, "key:p")


async def settled(gw: Any, scope: str) -> float:
    """The scope's spend once the gateway has noticed the client left (on its next write)."""
    spent = 0.0
    for _ in range(100):
        spent = spent_by(gw, scope)
        if spent:
            break
        await asyncio.sleep(0.02)
    return spent


async def test_a_stream_abandoned_before_its_usage_chunk_is_charged_for_what_was_relayed(sims: Sims) -> None:
    cost = await full_cost(sims)
    governance = {"pricing": {"gpt-sim": PRICE}, "keys": {"a": {"key": "sk-a", "budget_usd": 100}}}
    # The usage chunk comes 0.3 s after the finish: the client has left by then.
    async with running_gateway(governed(sims, governance, "primary/gpt-sim@chunk_delay=0.3,chunks=2")) as gw:
        async with client(gw, "sk-a") as a:
            for _ in range(3):
                stream = await a.chat.completions.create(model="chat", messages=MSG, stream=True)
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].finish_reason:
                        break  # the whole answer is read: leave before the usage chunk
                await stream.close()
        spent = await settled(gw, "key:a")
        for _ in range(50):  # all three noticed
            if spent_by(gw, "key:a") >= 2.5 * spent:
                break
            await asyncio.sleep(0.02)
        spent = spent_by(gw, "key:a")
    # An estimate (4 characters a token; the simulator counts a token a word), not $0.00.
    assert 3 * cost / 2 <= spent <= 3 * cost * 2


async def test_a_stream_whose_upstream_reports_no_usage_is_charged_an_estimate(sims: Sims) -> None:
    cost = await full_cost(sims)
    governance = {"pricing": {"gpt-sim": PRICE}, "keys": {"b": {"key": "sk-b", "budget_usd": 100}}}
    config = governed(sims, governance)
    config["providers"]["primary"]["drop_fields"] = ["stream_options"]  # the upstream is never asked for usage
    async with running_gateway(config) as gw, client(gw, "sk-b") as b:
        stream = await b.chat.completions.create(model="chat", messages=MSG, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        spent = spent_by(gw, "key:b")
    assert text.startswith("Echo from primary")
    assert cost / 2 <= spent <= cost * 2


async def test_concurrent_requests_cannot_spend_far_past_a_budget(sims: Sims) -> None:
    """50 requests at once on a key with about 10 requests of budget left: in-flight requests are reserved."""
    cost = await full_cost(sims)
    budget = round(10.5 * cost, 6)
    governance = {"pricing": {"gpt-sim": PRICE}, "keys": {"c": {"key": "sk-c", "budget_usd": budget}}}
    async with (
        running_gateway(governed(sims, governance, "primary/gpt-sim@latency=0.3")) as gw,
        client(gw, "sk-c") as c,
    ):

        async def one() -> str:
            try:
                await c.chat.completions.create(model="chat", messages=MSG, max_tokens=32)
            except openai.RateLimitError as refused:
                return str(refused.code)
            return "served"

        outcomes = await asyncio.gather(*(one() for _ in range(50)))
        served = outcomes.count("served")
        spent = spent_by(gw, "key:c")
        print(f"50 concurrent requests, budget for ~10.5: served {served}, spent/budget = {spent / budget:.2f}")
        async with httpx.AsyncClient() as http:
            own = await http.get(f"{gw.url}/sidestep/key", headers={"x-api-key": "sk-c"})
    assert set(outcomes) == {"served", "insufficient_quota"}
    assert 1 <= served <= 12 and spent / budget <= 1.15
    assert own.json()["limits"][0]["budget"]["reserved_usd"] == 0  # every reservation was settled


async def test_a_reservation_is_released_when_the_request_fails_or_the_client_leaves(sims: Sims) -> None:
    governance = {"pricing": {"gpt-sim": PRICE}, "keys": {"d": {"key": "sk-d", "budget_usd": 0.1}}}
    config = governed(sims, governance, "primary/gpt-sim@latency=0.5")
    config["routes"]["down"] = ["backup/gpt-sim@503"]
    async with running_gateway(config) as gw, client(gw, "sk-d") as d, httpx.AsyncClient() as http:
        slow = asyncio.ensure_future(d.chat.completions.create(model="chat", messages=MSG, max_tokens=64))
        await asyncio.sleep(0.2)  # in flight, holding ~$0.15 against the $0.10
        with pytest.raises(openai.RateLimitError) as held:
            await d.chat.completions.create(model="chat", messages=MSG, max_tokens=64)
        await slow
        with pytest.raises(openai.InternalServerError):
            await d.chat.completions.create(model="down", messages=MSG)
        body = {"model": "chat", "messages": MSG}
        with pytest.raises(httpx.ReadTimeout):  # the client leaves before the answer
            await http.post(f"{gw.base_url}/chat/completions", json=body, headers={"x-api-key": "sk-d"}, timeout=0.2)
        await asyncio.sleep(0.1)
        own = (await http.get(f"{gw.url}/sidestep/key", headers={"x-api-key": "sk-d"})).json()
    assert held.value.code == "insufficient_quota" and "held by requests in flight" in held.value.message
    budget = own["limits"][0]["budget"]
    assert budget["reserved_usd"] == 0 and 0 < budget["spent_usd"] < 0.1  # only the answer served was charged
