"""Resilience over real HTTP: retries, deadlines, cooldowns, breakers, hedging and stream safety.

Timing-dependent logic (breakers, cooldowns, backoff, deadlines) runs on a `FakeClock`, so nothing here
sleeps to wait for a cooldown; the few real delays are simulator latencies of a fraction of a second.
"""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from sidestep.sim.faults import FaultSpec
from sidestep.testing import FakeClock, RunningSim, config_for, running_gateway
from tests.conftest import Sdk

MSG = [{"role": "user", "content": "Tell me about resilience"}]
Sims = dict[str, RunningSim]


async def chat(sdk: Sdk, base_url: str) -> dict[str, str]:
    raw = await sdk(base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
    raw.parse()
    return dict(raw.headers)


async def test_retry_after_http_date_cools_the_key_down(sdk: Sdk, sims: Sims) -> None:
    clock = FakeClock()
    config = config_for(sims, {"chat": ["primary/a@status=429,retry_after=30,retry_after_date", "backup/b"]})
    async with running_gateway(config, clock=clock, sleep=clock.sleep) as gw:
        first = await chat(sdk, gw.base_url)
        second = await chat(sdk, gw.base_url)
        clock.advance(31)  # past the Retry-After date's distance (the date itself is wall-clock based)
        await chat(sdk, gw.base_url)
    assert first["x-sidestep-provider"] == "backup"
    assert second["x-sidestep-provider"] == "backup"
    assert second["x-sidestep-attempts"] == "2"  # primary recorded as skipped, not called
    assert len(sims["primary"].sim.received) == 2  # first call, then again only after the cooldown


async def test_retries_the_same_target_with_backoff_before_failing_over(sdk: Sdk, sims: Sims) -> None:
    clock = FakeClock()
    sims["primary"].sim.set_fault("status=503")
    route = {"chat": {"fallback": ["primary/a", "backup/b"], "retry": {"attempts": 3, "backoff": 0.5}}}
    async with running_gateway(config_for(sims, route), clock=clock, sleep=clock.sleep) as gw:
        headers = await chat(sdk, gw.base_url)
    assert len(sims["primary"].sim.received) == 3
    assert headers["x-sidestep-provider"] == "backup"
    assert headers["x-sidestep-attempts"] == "4"
    assert headers["x-sidestep-fallback-index"] == "1"
    assert len(clock.slept) == 2
    assert all(0 <= s <= 1.0 for s in clock.slept)  # full jitter: uniform(0, 0.5 * 2**n)


async def test_deadline_expiring_mid_backoff_answers_504_at_once(sdk: Sdk, sims: Sims) -> None:
    clock = FakeClock()
    route = {"chat": {"target": "primary/a@status=503,retry_after=5", "retry": 3, "deadline": 2}}
    async with running_gateway(config_for(sims, route), clock=clock, sleep=clock.sleep) as gw:
        with pytest.raises(openai.APIStatusError) as info:
            await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG)
    assert info.value.status_code == 504
    assert "deadline" in info.value.message
    assert "primary/a@status=503,retry_after=5: 503" in info.value.message
    assert clock.slept == []  # the 5 s Retry-After would outlive the 2 s deadline: no wait at all
    assert len(sims["primary"].sim.received) == 1


async def test_breaker_opens_skips_then_half_open_probe_fails_and_later_succeeds(sdk: Sdk, sims: Sims) -> None:
    clock = FakeClock()
    sims["primary"].sim.set_fault("status=503")
    resilience = {"breaker": {"failures": 3, "cooldown": 30}}
    config = config_for(sims, {"chat": ["primary/a", "backup/b"]}, resilience=resilience)
    async with running_gateway(config, clock=clock, sleep=clock.sleep) as gw:
        for _ in range(3):
            await chat(sdk, gw.base_url)
        assert len(sims["primary"].sim.received) == 3  # breaker now open
        headers = await chat(sdk, gw.base_url)
        assert len(sims["primary"].sim.received) == 3  # skipped without a network call
        assert headers["x-sidestep-provider"] == "backup"
        clock.advance(31)
        await chat(sdk, gw.base_url)  # half-open probe: fails, breaker reopens
        assert len(sims["primary"].sim.received) == 4
        await chat(sdk, gw.base_url)
        assert len(sims["primary"].sim.received) == 4  # open again, fresh cooldown
        sims["primary"].sim.set_fault(None)
        clock.advance(31)
        probe = await chat(sdk, gw.base_url)  # probe succeeds: closed
        after = await chat(sdk, gw.base_url)
    assert probe["x-sidestep-provider"] == "primary"
    assert after["x-sidestep-provider"] == "primary"
    assert gw.gateway.state.breakers.states()[("primary", "primary#0", "a")] == "closed"


async def test_every_target_open_still_tries_the_least_recently_failed(sdk: Sdk, sims: Sims) -> None:
    clock = FakeClock()
    sims["primary"].sim.set_fault("status=503")
    config = config_for(sims, {"chat": ["primary/a"]}, resilience={"breaker": {"failures": 1, "cooldown": 60}})
    async with running_gateway(config, clock=clock, sleep=clock.sleep) as gw:
        with pytest.raises(openai.APIStatusError):
            await chat(sdk, gw.base_url)
        sims["primary"].sim.set_fault(None)  # recovered, but its breaker is still open
        headers = await chat(sdk, gw.base_url)
    assert headers["x-sidestep-provider"] == "primary"


async def test_hedge_starts_the_next_target_and_cancels_the_loser(sdk: Sdk, sims: Sims) -> None:
    route = {"chat": {"fallback": ["primary/a@latency=3", "backup/b"], "hedge": 0.1}}
    async with running_gateway(config_for(sims, route)) as gw:
        started = time.perf_counter()
        headers = await chat(sdk, gw.base_url)
        elapsed = time.perf_counter() - started
    assert headers["x-sidestep-provider"] == "backup"
    assert headers["x-sidestep-attempts"] == "2"  # the cancelled primary attempt is recorded too
    assert elapsed < 2.0  # did not wait for the slow primary


async def test_first_token_timeout_fails_over_before_content(sdk: Sdk, sims: Sims) -> None:
    route = {"chat": {"fallback": ["primary/a@ttft=3", "backup/b"], "timeouts": {"first_token": 0.2}}}
    config = config_for(sims, route, server={"sse_keepalive": 0})
    async with running_gateway(config) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG, stream=True)
        chunks = [c async for c in raw.parse()]
    assert raw.headers["x-sidestep-provider"] == "backup"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Echo from backup")


async def test_keepalive_comments_reach_the_client_while_waiting(sdk: Sdk, sims: Sims) -> None:
    route = {"chat": ["primary/a@latency=0.5", "backup/b"]}
    config = config_for(sims, route, server={"sse_keepalive": 0.1})
    body = {"model": "chat", "messages": MSG, "stream": True}
    async with running_gateway(config) as gw, httpx.AsyncClient(timeout=10) as http:
        async with http.stream("POST", f"{gw.base_url}/chat/completions", json=body) as response:
            text = (await response.aread()).decode()
        assert response.status_code == 200
    assert text.startswith(": keep-alive\n\n")
    assert ": sidestep provider=primary model=a@latency=0.5 attempts=1" in text
    assert text.rstrip().endswith("data: [DONE]")
    async with running_gateway(config) as gw:  # and the official SDK reads it as an ordinary stream
        stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
        chunks = [c async for c in stream]
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)


async def test_all_failed_after_keepalive_ends_with_an_error_event(sdk: Sdk, sims: Sims) -> None:
    route = {"chat": ["primary/a@latency=0.3,status=503", "backup/b@status=500"]}
    config = config_for(sims, route, server={"sse_keepalive": 0.1})
    async with running_gateway(config) as gw:
        stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
        with pytest.raises(openai.APIError, match="All 2 attempt"):
            _ = [c async for c in stream]


async def test_mid_stream_drop_continues_on_the_next_target(sdk: Sdk, sims: Sims) -> None:
    route = {"chat": {"fallback": ["primary/a@drop_after=3", "backup/b"], "mid_stream": "continue"}}
    body = {"model": "chat", "messages": MSG, "stream": True}
    async with running_gateway(config_for(sims, route)) as gw:
        async with httpx.AsyncClient(timeout=10) as http:
            raw = (await http.post(f"{gw.base_url}/chat/completions", json=body)).text
        stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
        chunks = [c async for c in stream]  # no error raised: the switch is invisible to the SDK
    assert ": sidestep mid-stream switch from=primary/a@drop_after=3 to=backup/b" in raw
    assert raw.rstrip().endswith("data: [DONE]")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Echo from primary" in text
    assert "Echo from backup" in text
    continuation = sims["backup"].sim.received[-1].body
    assert continuation is not None
    assert continuation["messages"][-2]["role"] == "assistant"
    assert continuation["messages"][-2]["content"]  # the partial text already sent
    assert continuation["messages"][-1]["role"] == "user"


async def test_idle_gap_mid_stream_ends_with_an_error_event(sdk: Sdk, sims: Sims) -> None:
    route = {"chat": {"target": "primary/a@chunk_delay=1", "timeouts": {"idle": 0.2}}}
    async with running_gateway(config_for(sims, route)) as gw:
        stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
        with pytest.raises(openai.APIError, match="mid-stream"):
            _ = [c async for c in stream]


async def test_round_robin_alternates_between_healthy_targets(sdk: Sdk, sims: Sims) -> None:
    route = {"chat": {"loadbalance": ["primary/a", "backup/b"], "strategy": "round_robin"}}
    async with running_gateway(config_for(sims, route)) as gw:
        served = [(await chat(sdk, gw.base_url))["x-sidestep-provider"] for _ in range(4)]
    assert served == ["primary", "backup", "primary", "backup"]


async def test_context_window_error_switches_to_its_own_fallback_list(sdk: Sdk, sims: Sims) -> None:
    too_long = "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens."
    sims["primary"].sim.set_fault(FaultSpec(status=400, message=too_long))
    route = {
        "chat": {
            "fallback": ["primary/small", "third/small"],
            "fallbacks_on": {"context_window": ["backup/large-context"], "content_policy": ["third/lenient"]},
        }
    }
    async with running_gateway(config_for(sims, route)) as gw:
        headers = await chat(sdk, gw.base_url)
    assert headers["x-sidestep-provider"] == "backup"
    assert headers["x-sidestep-model"] == "large-context"
    assert headers["x-sidestep-attempts"] == "2"
    assert sims["third"].sim.received == []  # the ordinary fallback is not for prompts that do not fit


async def test_content_policy_error_uses_its_list_and_plain_400_returns_at_once(sdk: Sdk, sims: Sims) -> None:
    route = {"chat": {"fallback": ["primary/a", "third/b"], "fallbacks_on": {"content_policy": ["backup/lenient"]}}}
    sims["primary"].sim.set_fault(FaultSpec(status=400, message="Your request was rejected by our safety system."))
    async with running_gateway(config_for(sims, route)) as gw:
        headers = await chat(sdk, gw.base_url)
        assert headers["x-sidestep-provider"] == "backup"
        sims["primary"].sim.set_fault(FaultSpec(status=400, message="Invalid value for 'temperature'."))
        with pytest.raises(openai.BadRequestError, match="temperature") as caught:
            await chat(sdk, gw.base_url)
    assert caught.value.response.headers["x-sidestep-attempts"] == "1"
    assert sims["third"].sim.received == [] and len(sims["backup"].sim.received) == 1
