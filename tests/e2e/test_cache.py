"""The exact cache end to end, with the official SDKs: hits, misses and bypasses, stream replay, tenants,
the per-request controls, TTL and eviction on a fake clock, and what a hit costs (rpm, not spend)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sidestep.config.load import parse_config
from sidestep.errors import ConfigError
from sidestep.plugins.cache import Cache, MemoryStore
from sidestep.testing import FakeClock, RunningSim, config_for, running_gateway
from tests.sim_helpers import MSG, spent_by

Sims = dict[str, RunningSim]
PRICE = {"input": 1000.0, "output": 2000.0}


def cached(sims: Sims, cache: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    config = config_for(sims, {"chat": ["primary/gpt-sim"]}, server=extra.pop("server", None))
    config["cache"] = cache if cache is not None else {}
    config.update(extra)
    return config


def upstream(sims: Sims) -> int:
    return len(sims["primary"].sim.received)


def client(gw: Any, key: str = "client-key") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=20)


async def ask(c: openai.AsyncOpenAI, **extra: Any) -> tuple[str, str | None]:
    """(the answer's text, its x-sidestep-cache header)"""
    extra.setdefault("temperature", 0)
    extra.setdefault("messages", MSG)
    raw = await c.chat.completions.with_raw_response.create(model="chat", **extra)
    return raw.parse().choices[0].message.content or "", raw.headers.get("x-sidestep-cache")


async def test_a_repeated_request_is_answered_from_the_cache(sims: Sims) -> None:
    async with running_gateway(cached(sims)) as gw, client(gw) as c:
        first = await ask(c)
        second = await ask(c, user="someone-else")  # who the end user is does not change the answer
        other = await ask(c, messages=[{"role": "user", "content": "something else"}])
    assert first[1] == "miss" and second == (first[0], "hit") and other[1] == "miss"
    assert upstream(sims) == 2


async def test_a_stream_request_gets_the_cached_answer_replayed_as_sse(sims: Sims) -> None:
    async with running_gateway(cached(sims)) as gw, client(gw) as c:
        text, _ = await ask(c)
        raw = await c.chat.completions.with_raw_response.create(
            model="chat", messages=MSG, temperature=0, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in raw.parse()]
    assert raw.headers["x-sidestep-cache"] == "hit" and raw.headers["content-type"] == "text/event-stream"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert upstream(sims) == 1


async def test_requests_that_may_answer_differently_are_not_cached_unless_configured(sims: Sims) -> None:
    async with running_gateway(cached(sims)) as gw, client(gw) as c:
        unset = [await ask(c, temperature=None) for _ in range(2)]  # the providers' default is 1
        warm = [await ask(c, temperature=0.7) for _ in range(2)]
        seeded = [await ask(c, temperature=0.7, seed=7) for _ in range(2)]
    assert [h for _, h in unset + warm] == ["bypass"] * 4 and [h for _, h in seeded] == ["miss", "hit"]
    sims["primary"].sim.received.clear()
    async with running_gateway(cached(sims, {"nondeterministic": True})) as gw, client(gw) as c:
        allowed = [await ask(c, temperature=0.7) for _ in range(2)]
    assert [h for _, h in allowed] == ["miss", "hit"] and upstream(sims) == 1


async def test_cache_control_and_the_ttl_header(sims: Sims) -> None:
    clock = FakeClock(1_000_000.0)
    async with running_gateway(cached(sims, {"ttl": 60}), wall_clock=clock) as gw, client(gw) as c:
        no_store = [await ask(c, extra_headers={"cache-control": "no-store"}) for _ in range(2)]
        stored = await ask(c, extra_headers={"x-sidestep-cache-ttl": "600"})
        refreshed = await ask(c, extra_headers={"cache-control": "no-cache"})  # goes upstream, stores anew
        clock.advance(300)  # past the configured 60 s, within the refreshed entry's own (the config's) …
        after = await ask(c)
        with pytest.raises(openai.BadRequestError) as bad:
            await ask(c, extra_headers={"x-sidestep-cache-ttl": "forever"})
    assert [h for _, h in no_store] == ["bypass", "bypass"] and stored[1] == "miss" and refreshed[1] == "miss"
    assert after[1] == "miss"  # … the refresh stored it for 60 s, not 600
    assert "x-sidestep-cache-ttl" in bad.value.message and "forever" in bad.value.message
    assert upstream(sims) == 5


async def test_entries_expire_on_the_clock(sims: Sims) -> None:
    clock = FakeClock(1_000_000.0)
    async with running_gateway(cached(sims, {"ttl": 60}), wall_clock=clock) as gw, client(gw) as c:
        await ask(c)
        clock.advance(59)
        fresh = await ask(c)
        clock.advance(2)
        stale = await ask(c)
    assert fresh[1] == "hit" and stale[1] == "miss" and upstream(sims) == 2


def test_the_memory_store_evicts_the_least_recently_used_within_entries_and_bytes() -> None:
    from sidestep.plugins.cache.store import Entry

    clock = FakeClock(0.0)
    store = MemoryStore(max_entries=2, max_bytes=10_000, clock=clock)
    for key in ("a", "b"):
        store.put(key, Entry("openai", b"x" * 100, 0.0, 10.0))
    assert store.lookup("a") is not None  # "b" is now the least recently used
    store.put("c", Entry("openai", b"x" * 100, 0.0, 10.0))
    assert store.lookup("b") is None and store.lookup("a") is not None and store.evictions == 1
    small = MemoryStore(max_entries=100, max_bytes=1000, clock=clock)
    for key in "defg":
        small.put(key, Entry("openai", b"x" * 200, 0.0, 10.0))
    assert len(small) == 2 and small.bytes <= 1000 and small.evictions == 2
    clock.advance(10)
    assert small.lookup("g") is None and small.expirations == 1 and len(small) == 1


async def test_tenants_never_see_each_others_entries(sims: Sims) -> None:
    governance = {"teams": {"ops": {}}, "keys": {k: {"key": f"sk-{k}", "team": "ops"} for k in ("a", "b")}}
    async with running_gateway(cached(sims, governance=governance)) as gw, client(gw, "sk-a") as a:
        mine = [await ask(a) for _ in range(2)]
        async with client(gw, "sk-b") as b:
            theirs = await ask(b)
    assert [h for _, h in mine] == ["miss", "hit"] and theirs[1] == "miss" and upstream(sims) == 2
    sims["primary"].sim.received.clear()
    async with running_gateway(cached(sims, {"scope": "team"}, governance=governance)) as gw, client(gw, "sk-a") as a:
        await ask(a)
        async with client(gw, "sk-b") as b:
            shared = await ask(b)
    assert shared[1] == "hit" and upstream(sims) == 1


async def test_a_hit_counts_against_the_rate_limit_but_not_the_budget(sims: Sims, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    governance = {"pricing": {"primary/gpt-sim": PRICE}, "keys": {"a": {"key": "sk-a", "rpm": 3, "budget_usd": 5}}}
    config = cached(sims, governance=governance, server={"request_log": str(log)})
    async with running_gateway(config) as gw, client(gw, "sk-a") as a:
        await ask(a)
        spent = spent_by(gw, "key:a")
        hit = await ask(a)
        assert spent_by(gw, "key:a") == spent > 0  # a hit costs no upstream tokens
        await ask(a, extra_headers={"cache-control": "no-store"})
        with pytest.raises(openai.RateLimitError):
            await ask(a)  # the hit was the second of three requests this minute
    assert hit[1] == "hit"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r.get("cache") for r in records] == ["miss", "hit", "bypass", None]
    assert "usage" not in records[1] and "cost_usd" not in records[1] and records[1]["status"] == 200


async def test_embeddings_are_cached_and_the_metrics_count(sims: Sims) -> None:
    config = cached(sims, server={"metrics": True})
    config["routes"]["embed"] = ["primary/text-embedding-sim"]
    async with running_gateway(config) as gw, client(gw) as c:
        first = await c.embeddings.with_raw_response.create(model="embed", input="hello")
        second = await c.embeddings.with_raw_response.create(model="embed", input="hello")
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{gw.url}/metrics")).text
    assert first.headers["x-sidestep-cache"] == "miss" and second.headers["x-sidestep-cache"] == "hit"
    assert first.parse().data[0].embedding == second.parse().data[0].embedding
    assert 'sidestep_cache_requests_total{result="hit"} 1' in metrics
    assert "sidestep_cache_entries 1" in metrics and "sidestep_cache_evictions_total 0" in metrics


async def test_the_cache_is_off_without_its_section_and_the_path_awaits_nothing(sims: Sims) -> None:
    governance = {"keys": {"a": {"key": "sk-a"}}}
    async with running_gateway(cached(sims, governance=governance)) as on:
        assert isinstance(on.gateway.plugin("cache"), Cache) and on.gateway._pipeline.awaits
    config = cached(sims, governance=governance)
    del config["cache"]
    async with running_gateway(config) as off, client(off, "sk-a") as a:
        _, header = await ask(a)
        assert off.gateway.plugin("cache") is None and not off.gateway._pipeline.awaits
    assert header is None


@pytest.mark.parametrize(
    ("cache", "where", "reason"),
    [
        ({"scope": "everyone"}, "cache.scope", "expected one of key, team, customer, global"),
        ({"backend": "memcached"}, "cache.backend", "expected one of memory, redis"),
        ({"ttl": 100, "max_ttl": 10}, "cache.max_ttl", "at least cache.ttl"),
        ({"redis": {"url": "localhost:6379"}}, "cache.redis.url", "redis://"),
        ({"max_entries": 0}, "cache.max_entries", "integer >= 1"),
        ({"tll": 5}, "cache", "tll"),
        ({"semantic": {"route": "e", "models": ["*"], "max_bytes": 0}}, "cache.semantic.max_bytes", ">= 1"),
        ({"semantic": {"route": "e", "models": ["*"], "max_bytes": "1GB"}}, "cache.semantic.max_bytes", "integer"),
        ({"semantic": {"route": "e", "models": ["*"], "max_byte": 1}}, "cache.semantic", "max_byte"),
    ],
)
def test_config_mistakes_are_named(cache: dict[str, Any], where: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"cache": cache}, source="<test>", env={})
    assert where in str(caught.value) and reason in str(caught.value)


def test_an_empty_section_turns_the_cache_on() -> None:
    assert parse_config({"cache": None}, env={}).cache.enabled
    assert not parse_config({}, env={}).cache.enabled
    assert not parse_config({"cache": {"enabled": False}}, env={}).cache.enabled


async def test_an_answer_stored_for_one_format_is_served_to_the_other(sims: Sims, claude: Any) -> None:
    async with running_gateway(cached(sims)) as gw, client(gw) as c:
        text, stored = await ask(c, max_tokens=64)
        anthropic = claude(gw.url)
        raw = await anthropic.messages.with_raw_response.create(
            model="chat", max_tokens=64, messages=MSG, extra_body={"temperature": 0}
        )
        async with anthropic.messages.stream(
            model="chat", max_tokens=64, messages=MSG, extra_body={"temperature": 0}
        ) as stream:
            streamed = await stream.get_final_message()
        back = await ask(c, max_tokens=64, stream=False)
        message = await raw.parse()
    assert stored == "miss" and raw.headers["x-sidestep-cache"] == "hit"
    assert message.content[0].text == text and message.usage.output_tokens > 0  # type: ignore[union-attr]
    assert streamed.content[0].text == text and streamed.stop_reason == "end_turn"  # type: ignore[union-attr]
    assert back == (text, "hit") and upstream(sims) == 1


async def test_responses_clients_share_the_cache_with_chat_clients(sims: Sims) -> None:
    async with running_gateway(cached(sims)) as gw, client(gw) as c:
        text, stored = await ask(c, max_tokens=64)
        raw = await c.responses.with_raw_response.create(model="chat", input=MSG, max_output_tokens=64, temperature=0)
        async with c.responses.stream(model="chat", input=MSG, max_output_tokens=64, temperature=0) as stream:
            streamed = await stream.get_final_response()
    assert stored == "miss" and raw.headers["x-sidestep-cache"] == "hit"
    assert raw.parse().output_text == text and streamed.output_text == text


async def test_an_answer_that_went_out_as_a_stream_is_stored(sims: Sims) -> None:
    async with running_gateway(cached(sims)) as gw, client(gw) as c:
        raw = await c.chat.completions.with_raw_response.create(model="chat", messages=MSG, temperature=0, stream=True)
        streamed = "".join(
            chunk.choices[0].delta.content or "" for chunk in [x async for x in raw.parse()] if chunk.choices
        )
        whole = await ask(c)
        again = await c.chat.completions.with_raw_response.create(
            model="chat", messages=MSG, temperature=0, stream=True
        )
        replayed = "".join(
            chunk.choices[0].delta.content or "" for chunk in [x async for x in again.parse()] if chunk.choices
        )
    assert raw.headers["x-sidestep-cache"] == "miss" and streamed
    assert whole == (streamed, "hit") and again.headers["x-sidestep-cache"] == "hit" and replayed == streamed
    assert upstream(sims) == 1
