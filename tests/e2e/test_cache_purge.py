"""Purging the cache: `POST /sidestep/cache/purge` (on with `cache.admin_key`, guarded like every plugin
endpoint) and `sidestep cache purge`, by tenant, route and age, in memory and in Redis; and what hostile
input gets (a 4xx that says why, never a purge of everything, never a 500)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from sidestep.cli.main import main
from sidestep.plugins.cache.admin import MAX_BODY, purge_request
from sidestep.plugins.cache.store import Entry, MemoryStore, Purge, tenant_in
from sidestep.testing import FakeClock, RunningSim, config_for, running_gateway
from tests.sim_helpers import MSG

Sims = dict[str, RunningSim]
ADMIN = "admin-secret"
GOVERNANCE = {"keys": {k: {"key": f"sk-{k}"} for k in ("a", "b")}}


def purgeable(sims: Sims, **cache: Any) -> dict[str, Any]:
    config = config_for(sims, {"chat": ["primary/gpt-sim"], "other": ["primary/gpt-sim"]})
    config["cache"] = {"admin_key": ADMIN, **cache}
    config["governance"] = GOVERNANCE
    return config


async def ask(gw: Any, key: str, model: str = "chat") -> str | None:
    async with openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=20) as c:
        raw = await c.chat.completions.with_raw_response.create(model=model, messages=MSG, temperature=0)
    return raw.headers.get("x-sidestep-cache")


async def purge(gw: Any, body: Any, admin: str | None = ADMIN, key: str = "sk-a") -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    if admin is not None:
        headers["x-sidestep-admin-key"] = admin
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(f"{gw.url}/sidestep/cache/purge", content=content, headers=headers)


async def test_purge_by_tenant_route_and_age(sims: Sims) -> None:
    clock = FakeClock(1_000_000.0)
    async with running_gateway(purgeable(sims), wall_clock=clock) as gw:
        for key in ("sk-a", "sk-b"):
            await ask(gw, key)
        clock.advance(100)
        await ask(gw, "sk-b", "other")
        by_tenant = (await purge(gw, {"tenant": "key:a"})).json()
        after_tenant = [await ask(gw, "sk-a"), await ask(gw, "sk-b")]  # a's entry is stored again
        by_route = (await purge(gw, {"route": "other"})).json()
        other = await ask(gw, "sk-b", "other")
        by_age = (await purge(gw, {"older_than": 50})).json()  # b's "chat" entry, 100 s old
        after_age = [await ask(gw, "sk-b"), await ask(gw, "sk-a")]
        everything = (await purge(gw, {"all": True})).json()
    assert by_tenant == {"purged": 1} and after_tenant == ["miss", "hit"]
    assert by_route == {"purged": 1} and other == "miss"
    assert by_age == {"purged": 1} and after_age == ["miss", "hit"]
    assert everything == {"purged": 3}


async def test_the_cli_purges_through_the_gateway(sims: Sims) -> None:
    async with running_gateway(purgeable(sims)) as gw:
        await ask(gw, "sk-a")
        await ask(gw, "sk-b")
        base = ["cache", "--url", gw.url, "--key", "sk-a", "--admin-key", ADMIN, "purge"]
        assert await asyncio.to_thread(main, [*base, "--tenant", "key:b", "--older-than", "0s"]) == 0
        assert [await ask(gw, "sk-a"), await ask(gw, "sk-b")] == ["hit", "miss"]
        assert await asyncio.to_thread(main, [*base]) == 2  # nothing said: refused here
        assert await asyncio.to_thread(main, [*base, "--older-than", "1; DROP"]) == 2
        assert await asyncio.to_thread(main, [*base, "--tenant", "bob"]) == 1  # the gateway's 400
        wrong = ["cache", "--url", gw.url, "--key", "sk-a", "--admin-key", "guess", "purge", "--all"]
        assert await asyncio.to_thread(main, wrong) == 1
        assert await asyncio.to_thread(main, [*base, "--all"]) == 0
        assert [await ask(gw, "sk-a"), await ask(gw, "sk-b")] == ["miss", "miss"]


HOSTILE: list[tuple[Any, int, str]] = [
    ({}, 400, "say what to purge"),
    ({"tenant": "bob"}, 400, "tenant must be"),
    ({"tenant": "key:"}, 400, "names no one"),
    ({"tenant": "key:a\r\nx-injected: 1"}, 400, "control characters"),
    ({"tenant": "key:" + "a" * 300}, 400, "at most 256"),
    ({"tenant": ["key:a"]}, 400, "non-empty string"),
    ({"route": ""}, 400, "non-empty string"),
    ({"older_than": "1; DROP TABLE"}, 400, "number of seconds"),
    ({"older_than": -5}, 400, "between 0"),
    ({"older_than": 1e300}, 400, "between 0"),
    ({"older_than": True}, 400, "number of seconds"),
    ({"all": "yes"}, 400, "true or false"),
    ({"all": True, "$where": "1"}, 400, "unknown purge field"),
    (["tenant"], 400, "JSON object"),
    (b"{not json", 400, "not JSON"),
    (b'{"tenant": "' + b"x" * MAX_BODY + b'"}', 413, "at most 4096 bytes"),
]


async def test_hostile_purge_requests_get_a_clear_4xx_and_purge_nothing(sims: Sims) -> None:
    async with running_gateway(purgeable(sims)) as gw:
        await ask(gw, "sk-a")
        answers = [(await purge(gw, body), status, text) for body, status, text in HOSTILE]
        no_admin = await purge(gw, {"all": True}, admin=None)
        wrong_admin = await purge(gw, {"all": True}, admin="admin-secreT")
        stranger = await purge(gw, {"all": True}, key="sk-nobody")  # the guard: a known virtual key first
        glob = (await purge(gw, {"tenant": "key:*"})).json()  # a literal name, never a pattern
        still = await ask(gw, "sk-a")
    for response, status, text in answers:
        assert response.status_code == status and text in response.json()["error"]["message"], response.text
    assert no_admin.status_code == 401 and "x-sidestep-admin-key" in no_admin.json()["error"]["message"]
    assert wrong_admin.status_code == 401 and stranger.status_code == 401
    assert glob == {"purged": 0} and still == "hit"


async def test_without_an_admin_key_there_is_no_purge_endpoint(sims: Sims) -> None:
    config = purgeable(sims)
    del config["cache"]["admin_key"]
    async with running_gateway(config) as gw:
        response = await purge(gw, {"all": True})
    assert response.status_code == 404


async def test_the_memory_store_purges_by_key_and_entry() -> None:
    store = MemoryStore(100, 1_000_000, FakeClock(0.0))
    store.put("chat:key:a:b:1f", Entry("openai", b"x", 10.0, 99.0, "chat"))  # a tenant with a colon in its name
    store.put("chat:key:a:2f", Entry("openai", b"x", 20.0, 99.0, "other"))
    store.put("embeddings:*:3f", Entry("openai", b"x", 30.0, 99.0, "embed"))
    assert tenant_in("chat:key:a:b:1f") == "key:a:b" and tenant_in("embeddings:*:3f") == "*"
    assert await store.purge(Purge(tenant="key:a")) == 1 and len(store) == 2
    assert await store.purge(Purge(before=25.0)) == 1 and await store.purge(Purge(route="embed")) == 1
    assert len(store) == 0 and store.bytes == 0
    with pytest.raises(Exception, match="say what to purge"):
        purge_request(b"{}", 0.0)
