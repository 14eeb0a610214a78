"""The cache shared in Redis: the real Redis on 127.0.0.1:6379 (keys under a prefix of this run, removed
afterwards), and a Redis that is not there (a closed port): misses, counted, never a failed request.

Without a Redis on 127.0.0.1:6379 these tests are skipped, unless SIDESTEP_REQUIRE_REDIS is set (`.ci/run`
sets it after starting one), where its absence fails them."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
import redis.asyncio

from sidestep.plugins.cache import Cache
from sidestep.plugins.cache.redis_store import RedisStore
from sidestep.testing import RunningSim, config_for, running_gateway
from tests.sim_helpers import MSG

Sims = dict[str, RunningSim]
URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test alone; every key under it is deleted afterwards."""
    client = redis.asyncio.Redis.from_url(URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except (redis.RedisError, OSError) as exc:
        await client.aclose()
        if os.environ.get("SIDESTEP_REQUIRE_REDIS"):
            pytest.fail(f"no Redis on 127.0.0.1:6379: {exc!r}")
        pytest.skip("no Redis on 127.0.0.1:6379 (SIDESTEP_REQUIRE_REDIS unset)")
    name = f"sidestep-test:{uuid.uuid4().hex}:"
    try:
        yield name
    finally:
        keys = [key async for key in client.scan_iter(match=name + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def shared(sims: Sims, url: str, prefix: str = "sidestep-test:", **server: Any) -> dict[str, Any]:
    config = config_for(sims, {"chat": ["primary/gpt-sim"]}, server=server)
    config["cache"] = {"backend": "redis", "redis": {"url": url, "prefix": prefix, "timeout": 0.5}}
    return config


async def ask(gw: Any) -> tuple[str, str | None]:
    async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="k", max_retries=0, timeout=20) as c:
        raw = await c.chat.completions.with_raw_response.create(model="chat", messages=MSG, temperature=0)
    return raw.parse().choices[0].message.content or "", raw.headers.get("x-sidestep-cache")


def store_of(gw: Any) -> RedisStore:
    cache = gw.gateway.plugin("cache")
    assert isinstance(cache, Cache) and isinstance(cache.store, RedisStore)
    return cache.store


async def test_two_gateways_share_entries_through_redis(sims: Sims, prefix: str) -> None:
    config = shared(sims, URL, prefix)
    async with running_gateway(config) as one, running_gateway(config) as two:
        first = await ask(one)
        await store_of(one).drain()  # the write goes out in the background
        second = await ask(two)
        third = await ask(one)
    assert first[1] == "miss" and second == (first[0], "hit") and third[1] == "hit"
    assert len(sims["primary"].sim.received) == 1
    client = redis.asyncio.Redis.from_url(URL)
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    ttl = await client.pttl(keys[0])
    await client.aclose()
    assert len(keys) == 1 and keys[0].startswith(prefix.encode() + b"chat:*:") and 0 < ttl <= 3600 * 1000


async def test_a_redis_that_is_not_there_is_a_miss_never_a_failure(sims: Sims) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with running_gateway(shared(sims, f"redis://127.0.0.1:{port}/0", metrics=True)) as gw:
        answers = [await ask(gw) for _ in range(3)]
        await store_of(gw).drain()
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{gw.url}/metrics")).text
        store = store_of(gw)
    assert [header for _, header in answers] == ["miss"] * 3 and all(text for text, _ in answers)
    assert len(sims["primary"].sim.received) == 3
    assert store.errors >= 1 and store.errors + store.skipped >= 3  # after a failure it rests, not retries each time
    assert "sidestep_cache_redis_errors_total" in metrics


@pytest.fixture
async def own_redis() -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """A Redis server of this test's own on a free port (to be killed mid-run)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("SIDESTEP_REQUIRE_REDIS"):
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    process = await asyncio.create_subprocess_exec(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.asyncio.Redis(port=port)
    try:
        for _ in range(100):
            try:
                await client.ping()
                break
            except (redis.RedisError, OSError):
                await asyncio.sleep(0.05)
        yield process, port
    finally:
        await client.aclose()
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_redis_killed_mid_run_turns_hits_into_misses_not_errors(
    sims: Sims, own_redis: tuple[asyncio.subprocess.Process, int]
) -> None:
    process, port = own_redis
    async with running_gateway(shared(sims, f"redis://127.0.0.1:{port}/0")) as gw:
        before = [await ask(gw)]
        await store_of(gw).drain()
        before.append(await ask(gw))
        if process.returncode is None:
            process.kill()
        await process.wait()
        after = [await ask(gw) for _ in range(2)]
    assert [h for _, h in before] == ["miss", "hit"] and [h for _, h in after] == ["miss", "miss"]
    assert all(text == before[0][0] for text, _ in after) and store_of(gw).errors >= 1


async def test_a_purge_in_redis_matches_names_literally_and_keeps_the_grace(prefix: str) -> None:
    from sidestep.plugins.cache.store import Entry, Purge

    # A prefix with a glob in it: unescaped, its pattern would reach the neighbour's keys.
    store = RedisStore(URL, prefix + "a*:", 1.0, grace=100.0)
    other = RedisStore(URL, prefix + "ab:", 1.0)
    store.put("chat:key:a:1f", Entry("openai", b"x", 0.0, 60.0, "chat"))
    store.put("chat:key:b:2f", Entry("openai", b"x", 50.0, 110.0, "other"))
    store.put("chat:key:*:3f", Entry("openai", b"x", 50.0, 110.0, "chat"))
    other.put("chat:key:a:4f", Entry("openai", b"x", 0.0, 60.0, "chat"))
    await store.drain()
    await other.drain()
    client = redis.asyncio.Redis.from_url(URL)
    try:
        kept_for = await client.pttl(prefix + "a*:chat:key:a:1f")
        assert 60_000 < kept_for <= 160_000  # its TTL and the grace
        assert await store.purge(Purge(tenant="key:*")) == 1  # the tenant literally named "key:*", no other
        assert await store.purge(Purge(route="other")) == 1
        assert await store.purge(Purge(before=10.0)) == 1
        assert await store.get("chat:key:a:1f") is None and await other.get("chat:key:a:4f") is not None
        assert await other.purge(Purge(tenant="key:a")) == 1
    finally:
        await client.aclose()
        store.close()
        other.close()
        await store.drain()
        await other.drain()
