"""Streams that break after their first token, over real HTTP: the failure counts against the target.

The gateway has already committed to a target when the first token reaches the client, so a later
failure cannot be failed over for that request — but it must reach the breaker, so that the next
requests go elsewhere. Breaker timing runs on a `FakeClock`.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import openai
import pytest

from sidestep.testing import FakeClock, RunningSim, config_for, running_gateway
from tests.conftest import AttemptLog, Sdk

MSG = [{"role": "user", "content": "Tell me about streams"}]
Sims = dict[str, RunningSim]


async def stream_once(sdk: Sdk, base_url: str) -> str:
    """One streamed chat through the gateway: the provider that served it, or "failed" when it broke."""
    raw = await sdk(base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG, stream=True)
    stream = raw.parse()
    try:
        _ = [chunk async for chunk in stream]
    except openai.APIError as exc:
        message = exc.message
    else:
        return str(raw.headers["x-sidestep-provider"])
    assert "mid-stream" in message
    return "failed"


async def test_streams_failing_after_the_first_token_open_the_breaker(sdk: Sdk, sims: Sims) -> None:
    clock = FakeClock()
    sims["primary"].sim.set_fault("drop_after=3")
    resilience = {"breaker": {"failures": 3, "cooldown": 30}}
    config = config_for(sims, {"chat": ["primary/a", "backup/b"]}, resilience=resilience)
    async with running_gateway(config, clock=clock, sleep=clock.sleep) as gw:
        first = [await stream_once(sdk, gw.base_url) for _ in range(5)]
        clock.advance(31)  # half-open: one probe goes to the primary, breaks again, and the breaker reopens
        probe = [await stream_once(sdk, gw.base_url) for _ in range(2)]
        clock.advance(31)
        sims["primary"].sim.set_fault(None)  # recovered: a probe that streams to the end closes the breaker
        healed = [await stream_once(sdk, gw.base_url) for _ in range(2)]
        states = set(gw.gateway.state.breakers.states().values())
    assert first == ["failed", "failed", "failed", "backup", "backup"]
    assert probe == ["failed", "backup"]
    assert healed == ["primary", "primary"]
    assert len(sims["primary"].sim.received) == 6
    assert states == {"closed"}


@pytest.mark.parametrize("mid_stream", ["fail", "continue"])
async def test_a_broken_stream_is_recorded_as_a_failed_attempt(sdk: Sdk, sims: Sims, mid_stream: str) -> None:
    log = AttemptLog()
    route = {"chat": {"fallback": ["primary/a@drop_after=3", "backup/b"], "mid_stream": mid_stream}}
    async with running_gateway(config_for(sims, route), observers=[log]) as gw:
        await stream_once(sdk, gw.base_url)
    assert log.seen[0] == ("primary", 200, "ok")
    provider, status, reason = log.seen[1]
    assert (provider, status) == ("primary", None)
    assert "failed mid-stream" in reason


async def test_a_probe_stream_the_client_leaves_frees_its_half_open_slot(sdk: Sdk, sims: Sims) -> None:
    clock = FakeClock()
    sims["primary"].sim.set_fault("drop_after=3")
    resilience = {"breaker": {"failures": 1, "cooldown": 30}}
    config = config_for(sims, {"chat": ["primary/a", "backup/b"]}, resilience=resilience)
    async with running_gateway(config, clock=clock, sleep=clock.sleep) as gw:
        assert await stream_once(sdk, gw.base_url) == "failed"
        clock.advance(31)
        sims["primary"].sim.set_fault("chunk_delay=0.1,chunks=50")
        stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
        await anext(aiter(stream))  # the probe has its first token; the client leaves
        await stream.close()
        breaker = gw.gateway.state.breakers.get("primary", "primary#0", "a")
        for _ in range(100):  # the gateway notices at its next write to the closed connection
            if breaker.available(clock()):
                break
            await asyncio.sleep(0.02)
        sims["primary"].sim.set_fault(None)
        after = await stream_once(sdk, gw.base_url)
    assert after == "primary"  # the slot was freed: the next request is the probe, and it closes the breaker
    assert breaker.state == "closed"


async def test_a_same_format_continuation_reads_as_one_stream(sdk: Sdk, sims: Sims) -> None:
    route = {"chat": {"fallback": ["primary/a@drop_after=3", "backup/b"], "mid_stream": "continue"}}
    async with running_gateway(config_for(sims, route)) as gw:
        client = sdk(gw.base_url)
        chunks = [c async for c in await client.chat.completions.create(model="chat", messages=MSG, stream=True)]
        async with client.chat.completions.stream(model="chat", messages=MSG) as stream:
            final = await stream.get_final_completion()
    assert len({chunk.id for chunk in chunks}) == 1  # the continuation carries the first stream's id
    assert [chunk.choices[0].delta.role for chunk in chunks if chunk.choices].count("assistant") == 1
    message = final.choices[0].message
    assert message.role == "assistant"  # the SDK joins every `role` it is sent ("assistantassistant")
    assert message.content is not None
    assert "Echo from primary" in message.content
    assert "Echo from backup" in message.content


async def test_errors_clients_read_name_the_provider_not_its_address(
    sdk: Sdk, sims: Sims, caplog: pytest.LogCaptureFixture
) -> None:
    """A dropped stream and an unreachable upstream: the client learns which provider failed, never where it
    lives; the operator's log keeps the address."""
    caplog.set_level(logging.WARNING, logger="sidestep")  # other tests may have raised the CLI's level
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections to it are refused
    port = closed.getsockname()[1]
    config = config_for(sims, {"chat": "primary/a@drop_after=3", "gone": "nowhere/a"})
    config["providers"]["nowhere"] = {"type": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "api_key": "k"}
    try:
        async with running_gateway(config) as gw:
            stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
            with pytest.raises(openai.APIError) as mid_stream:
                _ = [chunk async for chunk in stream]
            with pytest.raises(openai.APIStatusError) as unreachable:
                await sdk(gw.base_url).chat.completions.create(model="gone", messages=MSG)
    finally:
        closed.close()
    for message in (mid_stream.value.message, unreachable.value.message):
        assert "127.0.0.1" not in message
        assert "http" not in message
    assert "primary/a@drop_after=3 failed mid-stream: connection failed (read)" in mid_stream.value.message
    assert "nowhere/a: 502 connection refused" in unreachable.value.message
    assert f"connection refused [http://127.0.0.1:{port}]" in caplog.text
