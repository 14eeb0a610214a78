"""Serve stale on outage: when every target of a route `cache.serve_stale` names fails, an expired entry
(within `cache.stale_grace`) answers instead of the 502, marked `x-sidestep-cache: stale` — whole or as a
stream — through the plugin contract's `RescuesFailures`. Fake clocks move time; the simulator fails."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from sidestep.config.load import parse_config
from sidestep.errors import ConfigError
from sidestep.plugins.capabilities import RescuesFailures, discover
from sidestep.testing import FakeClock, RunningSim, config_for, running_gateway
from tests.sim_helpers import MSG

Sims = dict[str, RunningSim]


def stale_config(sims: Sims, serve_stale: list[str], **cache: Any) -> dict[str, Any]:
    config = config_for(sims, {"chat": ["primary/gpt-sim"]})
    config["cache"] = {"ttl": 60, "serve_stale": serve_stale, "stale_grace": 600, **cache}
    return config


def client(gw: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.base_url, api_key="k", max_retries=0, timeout=20)


async def ask(c: openai.AsyncOpenAI, model: str = "chat") -> tuple[str, httpx.Headers]:
    raw = await c.chat.completions.with_raw_response.create(model=model, messages=MSG, temperature=0)
    return raw.parse().choices[0].message.content or "", raw.headers


async def test_an_expired_entry_answers_when_every_target_fails(sims: Sims) -> None:
    clock = FakeClock(1_000_000.0)
    async with running_gateway(stale_config(sims, ["chat"]), wall_clock=clock) as gw, client(gw) as c:
        text, first = await ask(c)
        clock.advance(120)  # past the TTL, within the grace
        again, healthy = await ask(c)  # a provider that answers: the expired entry is not a hit
        clock.advance(120)
        sims["primary"].sim.set_fault("status=503")
        stale_text, stale = await ask(c)
        raw = await c.chat.completions.with_raw_response.create(model="chat", messages=MSG, temperature=0, stream=True)
        chunks = [chunk async for chunk in raw.parse()]
        clock.advance(600)  # past the grace too: the failure stands
        with pytest.raises(openai.APIStatusError) as failed:
            await ask(c)
    assert first["x-sidestep-cache"] == "miss" and healthy["x-sidestep-cache"] == "miss" and again == text
    assert stale_text == text and stale.get_list("x-sidestep-cache") == ["stale"]
    assert int(stale["x-sidestep-cache-age"]) == 120 and int(stale["x-sidestep-attempts"]) >= 1
    assert stale["x-sidestep-request-id"].startswith("req_")
    assert raw.headers.get_list("x-sidestep-cache") == ["stale"]
    assert raw.headers["content-type"] == "text/event-stream"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == text
    assert failed.value.status_code == 502
    cache = gw.gateway.plugin("cache")
    assert cache is not None and cache.results["stale"] == 2  # type: ignore[attr-defined]


async def test_a_route_not_configured_for_it_gets_the_502(sims: Sims) -> None:
    clock = FakeClock(1_000_000.0)
    async with running_gateway(stale_config(sims, ["other*"]), wall_clock=clock) as gw, client(gw) as c:
        await ask(c)
        clock.advance(120)
        sims["primary"].sim.set_fault("status=503")
        with pytest.raises(openai.APIStatusError) as failed:
            await ask(c)
    assert failed.value.status_code == 502


async def test_without_serve_stale_expired_entries_are_not_kept(sims: Sims) -> None:
    clock = FakeClock(1_000_000.0)
    config = config_for(sims, {"chat": ["primary/gpt-sim"]})
    config["cache"] = {"ttl": 60}
    async with running_gateway(config, wall_clock=clock) as gw, client(gw) as c:
        await ask(c)
        clock.advance(61)
        sims["primary"].sim.set_fault("status=503")
        with pytest.raises(openai.APIStatusError):
            await ask(c)
        store = gw.gateway.plugin("cache").store  # type: ignore[union-attr]
    assert len(store) == 0  # dropped when found expired: no grace without serve_stale


def test_only_plugins_that_rescue_are_asked_and_the_config_is_checked() -> None:
    class Rescuer:
        name, wants_usage = "r", False

        def pre(self, exchange: Any) -> None: ...

        def post(self, exchange: Any) -> None: ...

        async def rescue(self, exchange: Any) -> None: ...

    class Plain:
        name, wants_usage = "p", False

        def pre(self, exchange: Any) -> None: ...

        def post(self, exchange: Any) -> None: ...

    rescuer = Rescuer()
    caps = discover([Plain(), rescuer])
    assert caps.rescuers == (rescuer,) and isinstance(rescuer, RescuesFailures)
    assert discover([Plain()]).rescuers == ()
    with pytest.raises(ConfigError, match=r"cache\.stale_grace"):
        parse_config({"cache": {"stale_grace": -1}}, source="<test>", env={})
    with pytest.raises(ConfigError, match=r"cache\.serve_stale"):
        parse_config({"cache": {"serve_stale": "chat"}}, source="<test>", env={})
