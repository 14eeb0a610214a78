"""The cache shared in Redis: the real Redis on 127.0.0.1:6379 (keys under a prefix of this run, removed
afterwards), and a Redis that is not there (a closed port): misses, counted, never a failed request. The
semantic vectors too: a paraphrase cached through one gateway process is a semantic hit on another; a damaged
record is skipped and counted; the follower resumes when Redis comes back; a vector whose entry is gone is
dropped.

Without a Redis on 127.0.0.1:6379 these tests are skipped, unless SIDESTEP_REQUIRE_REDIS is set (`.ci/run`
sets it after starting one), where its absence fails them."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import openai
import pytest
import redis.asyncio
import yaml

from sidestep.config.load import parse_config
from sidestep.plugins.cache import Cache
from sidestep.plugins.cache.redis_store import REST, RedisStore
from sidestep.plugins.cache.redis_vectors import STREAM, RedisVectorFeed, encode_record
from sidestep.plugins.cache.semantic import SemanticIndex
from sidestep.testing import FakeClock, RunningSim, config_for, running_gateway
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


async def _redis_server(port: int) -> asyncio.subprocess.Process:
    """A Redis server on `port`, answering (`redis-server` must be installed)."""
    binary = shutil.which("redis-server")
    assert binary is not None
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
    finally:
        await client.aclose()
    return process


async def _killed(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await process.wait()


@pytest.fixture
async def own_redis() -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """A Redis server of this test's own on a free port (to be killed mid-run)."""
    if shutil.which("redis-server") is None:
        if os.environ.get("SIDESTEP_REQUIRE_REDIS"):
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await _redis_server(port)
    try:
        yield process, port
    finally:
        await _killed(process)


async def test_redis_killed_mid_run_turns_hits_into_misses_not_errors(
    sims: Sims, own_redis: tuple[asyncio.subprocess.Process, int]
) -> None:
    process, port = own_redis
    async with running_gateway(shared(sims, f"redis://127.0.0.1:{port}/0")) as gw:
        before = [await ask(gw)]
        await store_of(gw).drain()
        before.append(await ask(gw))
        await _killed(process)
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


# -- the semantic vectors, shared through Redis ---------------------------------------------------------

QUESTION = "Tell me about failover in LLM gateways"
PARAPHRASE = "Please tell me about failover in LLM gateways!"  # cosine ~0.87 with the simulator's embeddings


def semantic_config(sims: Sims, url: str, prefix: str, **server: Any) -> dict[str, Any]:
    routes = {"chat": ["primary/gpt-sim"], "embed": ["backup/embed-sim"]}
    config = config_for(sims, routes, server=server)
    config["cache"] = {
        "backend": "redis",
        "redis": {"url": url, "prefix": prefix, "timeout": 0.5},
        "semantic": {"route": "embed", "models": ["chat"], "threshold": 0.85},
    }
    return config


async def ask_text(port: int, text: str) -> tuple[str, str | None, str | None]:
    """(the answer, x-sidestep-cache, x-sidestep-cache-similarity) from the gateway on `port`."""
    base = f"http://127.0.0.1:{port}/v1"
    async with openai.AsyncOpenAI(base_url=base, api_key="k", max_retries=0, timeout=20) as c:
        raw = await c.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": text}], temperature=0
        )
    headers = raw.headers
    return (
        raw.parse().choices[0].message.content or "",
        headers.get("x-sidestep-cache"),
        headers.get("x-sidestep-cache-similarity"),
    )


async def until(probe: Callable[[], Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


def serve(config: dict[str, Any], tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    with open(tmp_path / f"{name}.log", "wb") as out:
        argv = [sys.executable, "-m", "sidestep", "serve", "--config", str(path)]
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


async def scrape(port: int) -> str:
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            return (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    except httpx.TransportError:
        return ""


async def test_a_paraphrase_cached_through_one_gateway_process_is_a_semantic_hit_on_another(
    sims: Sims, prefix: str, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    procs = [serve(semantic_config(sims, URL, prefix, port=p, metrics=True), tmp_path, f"gw{p}") for p in ports]
    try:
        for port in ports:
            await until(lambda port=port: scrape(port))
        first = await ask_text(ports[0], QUESTION)
        # The other process follows the stream: its index holds the vector without having seen the question.
        await until(lambda: _has(scrape(ports[1]), "sidestep_cache_semantic_feed_read_total 1"))
        again = await ask_text(ports[1], PARAPHRASE)
        metrics = await scrape(ports[1])
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(15)
    logs = "".join((tmp_path / f"gw{p}.log").read_text() for p in ports)
    assert first[1] == "miss" and again[:2] == (first[0], "semantic-hit"), logs
    assert again[2] is not None and float(again[2]) >= 0.85
    assert sum(1 for r in sims["primary"].sim.received if r.path.endswith("/chat/completions")) == 1
    assert "sidestep_cache_semantic_entries 1" in metrics and "Traceback" not in logs


async def _has(text: Any, needle: str) -> bool:
    return needle in await text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def unit(dims: int, at: int) -> Any:
    return np.eye(dims, dtype=np.float32)[at]


async def test_a_damaged_or_foreign_vector_record_is_skipped_and_counted_and_the_follower_goes_on(
    prefix: str,
) -> None:
    clock = FakeClock(1000.0)
    index = SemanticIndex(100, clock)
    feed = RedisVectorFeed(URL, prefix, 0.5, index, clock, max_len=100, life=60, block=0.1)
    writer = RedisVectorFeed(URL, prefix, 0.5, SemanticIndex(100, clock), clock, max_len=100, life=60)
    stream = prefix + STREAM
    client = redis.asyncio.Redis.from_url(URL)
    good = encode_record("other", "key:a:b1", "chat:key:a:d1", 2000.0, unit(4, 0))
    bad = [
        b"\xc1not msgpack",
        msgspec.msgpack.encode((2, "o", "key:a:b1", "chat:key:a:d9", 2000.0, b"\0" * 16)),  # another version
        encode_record("other", "key:a:b1", "chat:key:a:d2", 2000.0, unit(4, 0))[:-3],  # cut short
        msgspec.msgpack.encode((1, "o", "key:a:b1", "chat:key:a:d3", 2000.0, np.full(4, np.nan, "<f4").tobytes())),
        msgspec.msgpack.encode((1, "o", "key:a:b1", "chat:key:a:d4", 2000.0, b"\0" * 16)),  # length zero
        msgspec.msgpack.encode((1, "o", "key:a:b1", "chat:key:a:d5", 2000.0, b"\0" * (4 * 20_000))),  # too long
        encode_record("other", "key:a:b1", "chat:key:mallory:d6", 2000.0, unit(4, 1)),  # another tenant's key
        encode_record("other", "key:a:" + "b" * 2000, "chat:key:a:d7", 2000.0, unit(4, 1)),  # a name too long
        msgspec.msgpack.encode((1, "o", "key:a:b1", "chat:key:a:d8", "soon", unit(4, 2).tobytes())),  # wrong type
    ]
    try:
        for raw in bad:
            await client.xadd(stream, {b"r": raw})
        await client.xadd(stream, {b"other-field": good})
        await client.xadd(stream, {b"r": encode_record("other", "key:a:b1", "chat:key:a:old", 999.0, unit(4, 3))})
        feed.start()
        writer.publish("key:a:b1", "chat:key:a:d1", unit(4, 0), 2000.0)
        await writer.drain()
        await until(lambda: "chat:key:a:d1" in index)
    finally:
        feed.close()
        writer.close()
        await feed.drain()
        await writer.drain()
        await client.aclose()
    assert feed.corrupt == len(bad) + 1 and feed.read == 1 and len(index) == 1  # the expired one is not indexed
    assert index.nearest("key:a:b1", unit(4, 0), 0.9) == ("chat:key:a:d1", 1.0)
    assert feed.counters()["semantic_feed_corrupt_total"] == len(bad) + 1 and writer.published == 1


async def test_the_follower_resumes_when_redis_comes_back(own_redis: tuple[asyncio.subprocess.Process, int]) -> None:
    process, port = own_redis
    url = f"redis://127.0.0.1:{port}/0"
    clock = FakeClock(1000.0)
    index = SemanticIndex(100, clock)
    follower = RedisVectorFeed(url, "p:", 0.3, index, clock, max_len=100, life=60, block=0.2)
    writer = RedisVectorFeed(url, "p:", 0.3, SemanticIndex(100, clock), clock, max_len=100, life=60)
    follower.start()
    try:
        writer.publish("key:a:b", "chat:key:a:before", unit(4, 0), 2000.0)
        await writer.drain()
        await until(lambda: "chat:key:a:before" in index)
        await _killed(process)
        await until(lambda: follower.errors >= 1)
        writer.publish("key:a:b", "chat:key:a:lost", unit(4, 1), 2000.0)  # Redis is down: dropped, counted
        await writer.drain()
        assert writer.dropped == 1 and writer.errors == 1
        process = await _redis_server(port)  # back, empty
        writer.publish("key:a:b", "chat:key:a:after", unit(4, 2), 2000.0)
        await writer.drain()
        await until(lambda: "chat:key:a:after" in index)
    finally:
        follower.close()
        writer.close()
        await follower.drain()
        await writer.drain()
        await _killed(process)
    assert "chat:key:a:before" in index and "chat:key:a:lost" not in index and follower.corrupt == 0


async def test_a_vector_whose_entry_is_gone_is_a_miss_and_is_dropped(sims: Sims, prefix: str) -> None:
    config = semantic_config(sims, URL, prefix)
    async with running_gateway(config) as one, running_gateway(config) as two:
        first = await ask_text(one.port, QUESTION)
        await store_of(one).drain()
        cache = two.gateway.plugin("cache")
        assert isinstance(cache, Cache)
        await until(lambda: "sidestep_cache_semantic_entries 1" in "\n".join(cache.exposition()))
        client = redis.asyncio.Redis.from_url(URL)
        entries = [k async for k in client.scan_iter(match=prefix + "chat:*")]
        await client.delete(*entries)  # evicted by Redis, say
        await client.aclose()
        again = await ask_text(two.port, PARAPHRASE)
        metrics = "\n".join(cache.exposition())
    assert first[1] == "miss" and again[1] == "miss" and "sidestep_cache_semantic_orphans_total 1" in metrics
    assert not any(key.decode().removeprefix(prefix) in cache._index for key in entries)  # type: ignore[operator]


async def test_redis_killed_under_the_semantic_cache_is_misses_and_keeps_the_vectors_until_it_is_back(
    sims: Sims, own_redis: tuple[asyncio.subprocess.Process, int]
) -> None:
    process, port = own_redis
    async with running_gateway(semantic_config(sims, f"redis://127.0.0.1:{port}/0", "p:")) as gw:
        cache = gw.gateway.plugin("cache")
        assert isinstance(cache, Cache) and cache._index is not None
        first = await ask_text(gw.port, QUESTION)
        await store_of(gw).drain()
        hit = await ask_text(gw.port, PARAPHRASE)
        await _killed(process)
        during = await ask_text(gw.port, PARAPHRASE + "?")
        kept = len(cache._index)  # an outage is not a reason to forget what is indexed
        process = await _redis_server(port)  # back, and empty: the entries are gone
        await asyncio.sleep(REST + 0.1)  # the store leaves Redis alone for a moment after a failure
        after = await ask_text(gw.port, "Tell me about failover in LLM gateways, please")
        metrics = "\n".join(cache.exposition())
    await _killed(process)
    assert [first[1], hit[1], during[1], after[1]] == ["miss", "semantic-hit", "miss", "miss"]
    assert all(answer[0] for answer in (during, after)) and kept >= 1
    assert (
        "sidestep_cache_semantic_orphans_total 1" in metrics and "sidestep_cache_semantic_feed_errors_total" in metrics
    )
    assert "sidestep_cache_semantic_feed_errors_total 0" not in metrics


async def test_a_reload_keeps_the_follower_with_the_index_and_stops_it_when_semantic_goes(
    sims: Sims, prefix: str
) -> None:
    config = semantic_config(sims, URL, prefix)
    async with running_gateway(config) as gw:
        before = gw.gateway.plugin("cache")
        assert isinstance(before, Cache) and isinstance(before._feed, RedisVectorFeed)
        feed = before._feed
        await ask_text(gw.port, QUESTION)
        gw.gateway.reconfigure(parse_config(config, source="<test>", env={}))
        kept = gw.gateway.plugin("cache")
        assert isinstance(kept, Cache) and kept is not before and kept._feed is feed and feed._follower is not None
        hit = await ask_text(gw.port, PARAPHRASE)
        plain = {**config, "cache": {k: v for k, v in config["cache"].items() if k != "semantic"}}
        gw.gateway.reconfigure(parse_config(plain, source="<test>", env={}))
        assert feed._follower is None  # the index went, and its follower with it
        await feed.drain()
    assert hit[1] == "semantic-hit"
