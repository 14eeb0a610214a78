"""Governance end to end, with the official SDKs: virtual keys, model allow-lists, rate limits and
budgets per key, team and customer, usage counted from streams, and the request log.

The wall clock is a fake the tests move, so minutes and budget periods pass without sleeping."""

from __future__ import annotations

import asyncio
import calendar
import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from sidestep.config.load import parse_config
from sidestep.errors import ConfigError
from sidestep.testing import RunningSim, config_for, running_gateway
from tests.sim_helpers import MSG, spent_by

Sims = dict[str, RunningSim]
PRICE = {"input": 1000.0, "output": 2000.0}  # USD per million tokens: a sim answer costs a few cents


class WallClock:
    def __init__(self) -> None:
        self.now = float(calendar.timegm((2026, 11, 25, 10, 0, 0)))

    def __call__(self) -> float:
        return self.now


def governed(sims: Sims, governance: dict[str, Any], **server: Any) -> dict[str, Any]:
    config = config_for(sims, {"chat": ["primary/gpt-sim"], "other": ["backup/gpt-sim"]}, server=server)
    config["governance"] = governance
    return config


def client(gw: Any, key: str | None) -> openai.AsyncOpenAI:
    # max_retries left at the SDK's default (2): a refusal must tell it not to retry, or when
    return openai.AsyncOpenAI(base_url=gw.base_url, api_key=key or "", timeout=20)


async def test_keys_are_required_and_checked_in_the_clients_dialect(sims: Sims) -> None:
    governance = {"keys": {"alice": {"key": "sk-alice"}}}
    async with running_gateway(governed(sims, governance)) as gw:
        async with httpx.AsyncClient() as http:
            bare = await http.post(f"{gw.base_url}/chat/completions", json={"model": "chat", "messages": MSG})
            malformed = await http.post(f"{gw.base_url}/chat/completions", content=b"{not json")
            keyed_malformed = await http.post(
                f"{gw.base_url}/chat/completions", content=b"{not json", headers={"x-api-key": "sk-alice"}
            )
        async with client(gw, "sk-wrong") as wrong, client(gw, "sk-alice") as alice:
            with pytest.raises(openai.AuthenticationError) as refused:
                await wrong.chat.completions.create(model="chat", messages=MSG)
            answer = await alice.chat.completions.create(model="chat", messages=MSG)
        claude = anthropic.AsyncAnthropic(base_url=gw.url, api_key="sk-nope", max_retries=0)
        async with claude:
            with pytest.raises(anthropic.AuthenticationError) as claude_refused:
                await claude.messages.create(model="chat", max_tokens=16, messages=MSG)
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "invalid_api_key"
    assert malformed.status_code == 401 and keyed_malformed.status_code == 400  # who you are comes first
    assert "Authorization: Bearer" in bare.json()["error"]["message"]
    assert refused.value.status_code == 401 and "not known" in refused.value.message
    assert answer.choices[0].message.content
    assert claude_refused.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert sum(1 for r in sims["primary"].sim.received) == 1  # refusals never reached a provider
    assert all(r.headers.get("authorization") == "Bearer key-primary" for r in sims["primary"].sim.received)


async def test_a_key_uses_only_its_models_fallbacks_included(sims: Sims) -> None:
    governance = {"keys": {"bob": {"key": "sk-bob", "models": ["chat"]}}}
    async with running_gateway(governed(sims, governance)) as gw, client(gw, "sk-bob") as bob:
        await bob.chat.completions.create(model="chat", messages=MSG)
        with pytest.raises(openai.PermissionDeniedError) as direct:
            await bob.chat.completions.create(model="backup/gpt-sim", messages=MSG)
        with pytest.raises(openai.PermissionDeniedError) as via_fallback:
            await bob.chat.completions.create(model="chat", messages=MSG, extra_body={"fallbacks": ["other"]})
    assert direct.value.code == "model_not_allowed" and "'backup/gpt-sim'" in direct.value.message
    assert "'other'" in via_fallback.value.message


async def test_requests_per_minute_per_key_and_per_team(sims: Sims) -> None:
    clock = WallClock()
    governance = {
        "teams": {"research": {"rpm": 3}},
        "keys": {"a": {"key": "sk-a", "team": "research", "rpm": 2}, "b": {"key": "sk-b", "team": "research"}},
    }
    gateway = running_gateway(governed(sims, governance), wall_clock=clock)
    async with gateway as gw, client(gw, "sk-a") as a, client(gw, "sk-b") as b:
        for _ in range(2):
            await a.chat.completions.create(model="chat", messages=MSG)
        with pytest.raises(openai.RateLimitError) as key_limit:
            await a.with_options(max_retries=0).chat.completions.create(model="chat", messages=MSG)
        await b.chat.completions.create(model="chat", messages=MSG)  # the team's third
        with pytest.raises(openai.RateLimitError) as team_limit:
            await b.with_options(max_retries=0).chat.completions.create(model="chat", messages=MSG)
        clock.now += 120  # two minutes on, the window is empty again
        await a.chat.completions.create(model="chat", messages=MSG)
    response = key_limit.value.response
    assert key_limit.value.code == "rate_limit_exceeded" and "Key 'a'" in key_limit.value.message
    assert key_limit.value.body["type"] == "requests"  # type: ignore[index]
    assert 1 <= int(response.headers["retry-after"]) <= 120 and response.headers["x-should-retry"] == "true"
    assert "Team 'research'" in team_limit.value.message
    assert len(sims["primary"].sim.received) == 4


async def test_budgets_count_reported_usage_and_stop_sdk_retries(sims: Sims) -> None:
    clock = WallClock()
    governance = {
        "pricing": {"gpt-sim": PRICE},
        "customers": {"acme": {"budget_usd": 0.05, "budget_period": "daily"}},
        "keys": {"c": {"key": "sk-c", "customer": "acme"}, "d": {"key": "sk-d", "customer": "acme"}},
    }
    gateway = running_gateway(governed(sims, governance), wall_clock=clock)
    async with gateway as gw, client(gw, "sk-c") as c, client(gw, "sk-d") as d:
        spent = 0.0
        while spent < 0.05:
            answer = await c.chat.completions.create(model="chat", messages=MSG)
            assert answer.usage is not None
            spent += (answer.usage.prompt_tokens * 1000 + answer.usage.completion_tokens * 2000) / 1e6
        sent = len(sims["primary"].sim.received)
        with pytest.raises(openai.RateLimitError) as refused:
            await d.chat.completions.create(model="chat", messages=MSG)  # the customer's budget is shared
        assert len(sims["primary"].sim.received) == sent
        assert gw.gateway.plugin("governance") is not None
        assert spent_by(gw, "customer:acme") == pytest.approx(spent)
        clock.now += 86400  # the next day
        await d.chat.completions.create(model="chat", messages=MSG)
    error = refused.value
    assert error.code == "insufficient_quota" and "customer 'acme'" in error.message
    assert "resets at 2026-11-26T00:00:00Z" in error.message
    assert error.response.headers["x-should-retry"] == "false" and "retry-after" not in error.response.headers


async def test_stream_usage_is_counted_without_showing_the_client_a_chunk_it_did_not_ask_for(sims: Sims) -> None:
    governance = {"pricing": {"gpt-sim": PRICE}, "keys": {"e": {"key": "sk-e", "tpm": 1_000_000, "budget_usd": 9}}}
    async with running_gateway(governed(sims, governance)) as gw, client(gw, "sk-e") as e:
        plain = [c async for c in await e.chat.completions.create(model="chat", messages=MSG, stream=True)]
        assert gw.gateway.plugin("governance") is not None
        after_plain = spent_by(gw, "key:e")
        options = {"include_usage": True}
        asked = [
            c
            async for c in await e.chat.completions.create(
                model="chat", messages=MSG, stream=True, stream_options=options
            )
        ]
        after_asked = spent_by(gw, "key:e")
        async with httpx.AsyncClient() as http:  # stream_options that is no object is replaced, not a crash
            body = {"model": "chat", "messages": MSG, "stream": True, "stream_options": "bogus"}
            odd = await http.post(f"{gw.base_url}/chat/completions", json=body, headers={"x-api-key": "sk-e"})
    assert all(chunk.choices for chunk in plain) and all(chunk.usage is None for chunk in plain)
    upstream = sims["primary"].sim.received[0].body
    assert upstream["stream_options"] == {"include_usage": True}  # the gateway asked for it
    assert asked[-1].usage is not None and not asked[-1].choices  # the client asked: it gets it
    assert after_plain > 0 and after_asked == pytest.approx(2 * after_plain)
    assert odd.status_code == 200 and b"[DONE]" in odd.content and b'"choices":[]' not in odd.content


async def test_anthropic_streams_are_counted_too(claude: Any, sims: Sims) -> None:
    config = {
        "providers": {
            "backup": {"type": "anthropic", "base_url": f"http://127.0.0.1:{sims['backup'].port}", "api_key": "k"}
        },
        "routes": {"chat": ["backup/claude-sim"]},
        "governance": {"pricing": {"claude-sim": PRICE}, "keys": {"f": {"key": "sk-f", "budget_usd": 5}}},
    }
    async with running_gateway(config) as gw:
        claude_client = anthropic.AsyncAnthropic(base_url=gw.url, api_key="sk-f", max_retries=0)
        async with claude_client, claude_client.messages.stream(model="chat", max_tokens=64, messages=MSG) as stream:
            final = await stream.get_final_message()
        assert gw.gateway.plugin("governance") is not None
        spent = spent_by(gw, "key:f")
    expected = (final.usage.input_tokens * 1000 + final.usage.output_tokens * 2000) / 1e6
    assert spent == pytest.approx(expected) and spent > 0


async def test_the_request_log_records_who_what_and_what_it_cost(sims: Sims, tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    governance = {
        "pricing": {"primary/gpt-sim": PRICE},
        "teams": {"ops": {}},
        "keys": {"g": {"key": "sk-g", "team": "ops", "rpm": 2}},
    }
    config = governed(sims, governance, request_log=str(path))
    config["routes"]["flaky"] = ["primary/gpt-sim@503", "backup/gpt-sim"]
    async with running_gateway(config) as gw, client(gw, "sk-g") as g:
        await g.chat.completions.create(model="chat", messages=MSG, user="end-user-42")
        stream = await g.chat.completions.create(model="flaky", messages=MSG, stream=True)
        [c async for c in stream]
        with pytest.raises(openai.RateLimitError):
            await g.with_options(max_retries=0).chat.completions.create(model="chat", messages=MSG)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    ok, streamed, refused = records
    assert ok["status"] == 200 and ok["provider"] == "primary" and ok["model"] == "gpt-sim"
    assert ok["key"] == "g" and ok["team"] == "ops" and ok["requested"] == "chat" and ok["usage"]["input"] > 0
    assert ok["user"] == "end-user-42" and "user" not in streamed
    assert ok["cost_usd"] == pytest.approx((ok["usage"]["input"] * 1000 + ok["usage"]["output"] * 2000) / 1e6)
    assert streamed["stream"] is True and streamed["provider"] == "backup" and streamed["usage"]["output"] > 0
    assert [a["status"] for a in streamed["attempts"]] == [503, 200]
    assert "cost_usd" not in streamed  # only primary/gpt-sim has a price
    assert refused["status"] == 429 and "requests per minute" in refused["error"] and "provider" not in refused
    assert all(r["id"].startswith("req_") and r["ms"] >= 0 for r in records)
    assert "Echo" not in path.read_text()  # prompts and answers are never logged


@pytest.mark.parametrize(
    ("governance", "where", "reason"),
    [
        ({"keys": {"a": {"team": "x", "key": "k"}}}, "governance.keys.a.team", "unknown team 'x'"),
        ({"keys": {"a": {"key": "k"}, "b": {"key": "k"}}}, "governance.keys.b.key", "same key value"),
        ({"keys": {"a": {"rpm": 5}}}, "governance.keys.a", "needs `key`"),
        ({"keys": {"a": {"key": "k", "budget_period": "hourly"}}}, "governance.keys.a.budget_period", "expected one"),
        (
            {"customers": {"c": {"budget_period": "daily"}}},
            "governance.customers.c.budget_period",
            "needs `budget_usd`",
        ),
        ({"pricing": {"m": {"input": 1}}}, "governance.pricing.m", "needs `output`"),
        ({"keys": {"a": {"key": "env:NOPE"}}}, "governance.keys.a.key", "NOPE is not set"),
        ({"teams": {"t": {"rpm": 0}}}, "governance.teams.t.rpm", "integer >= 1"),
        (
            {
                "customers": {"x": {}, "y": {}},
                "teams": {"t": {"customer": "x"}},
                "keys": {"a": {"key": "k", "team": "t", "customer": "y"}},
            },
            "governance.keys.a.customer",
            "differs from its team's customer 'x'",
        ),
    ],
)
def test_governance_config_mistakes_name_the_key(governance: dict[str, Any], where: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"governance": governance}, source="gw.yaml", env={})
    assert f"gw.yaml: {where}: " in str(caught.value) and reason in str(caught.value)


async def test_a_client_leaving_mid_stream_is_logged_and_its_request_still_counted(sims: Sims, tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    config = governed(sims, {"keys": {"h": {"key": "sk-h", "rpm": 100}}}, request_log=str(path))
    config["routes"]["slow"] = ["primary/gpt-sim@chunk_delay=0.1,chunks=50"]
    body = {"model": "slow", "messages": MSG, "stream": True}
    async with running_gateway(config) as gw:
        async with httpx.AsyncClient() as http:
            headers = {"authorization": "Bearer sk-h"}
            async with http.stream("POST", f"{gw.base_url}/chat/completions", json=body, headers=headers) as resp:
                async for _ in resp.aiter_bytes():
                    break  # leave after the first piece
        for _ in range(100):  # the gateway notices the hang-up on its next write
            if path.stat().st_size:
                break
            await asyncio.sleep(0.05)
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert record["status"] == 200 and record["error"] == "the client disconnected mid-stream"
    assert record["key"] == "h" and record["provider"] == "primary"
    assert record["usage"]["estimated"] is True and record["usage"]["output"] > 0  # what was relayed


async def test_a_client_leaving_before_the_answer_is_logged_as_499(sims: Sims, tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    config = governed(sims, {"keys": {"i": {"key": "sk-i"}}}, request_log=str(path))
    config["routes"]["slow"] = ["primary/gpt-sim@latency=5"]
    async with running_gateway(config) as gw:
        async with httpx.AsyncClient(timeout=0.3) as http:
            body = {"model": "slow", "messages": MSG}
            with pytest.raises(httpx.ReadTimeout):
                await http.post(f"{gw.base_url}/chat/completions", json=body, headers={"x-api-key": "sk-i"})
        for _ in range(100):
            if path.stat().st_size:
                break
            await asyncio.sleep(0.05)
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert record["status"] == 499 and record["error"] == "the client disconnected before the answer"
    assert record["key"] == "i" and "provider" not in record


async def test_a_stream_that_fails_after_its_head_is_logged_with_every_attempt(sims: Sims, tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    config = governed(sims, {}, request_log=str(path), sse_keepalive=0.05)
    config["routes"]["down"] = ["primary/gpt-sim@status=503,latency=0.3", "backup/gpt-sim@status=500,latency=0.3"]
    async with running_gateway(config) as gw, httpx.AsyncClient() as http:
        body = {"model": "down", "messages": MSG, "stream": True}
        answer = await http.post(f"{gw.base_url}/chat/completions", json=body, timeout=10)
    assert answer.status_code == 200 and b"all_targets_failed" in answer.content  # the head went out first
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert record["status"] == 200 and record["error"].startswith("All 2 attempt(s) failed")
    assert [a["status"] for a in record["attempts"]] == [503, 500] and "provider" not in record


async def test_tokens_per_minute_count_what_answers_used_embeddings_included(sims: Sims) -> None:
    clock = WallClock()
    governance = {"pricing": {"gpt-sim": PRICE}, "keys": {"t": {"key": "sk-t", "tpm": 2, "budget_usd": 100}}}
    gateway = running_gateway(governed(sims, governance), wall_clock=clock)
    async with gateway as gw, client(gw, "sk-t") as t:
        vectors = await t.embeddings.create(model="chat", input=["one", "two"])
        assert gw.gateway.plugin("governance") is not None and vectors.usage.prompt_tokens >= 2
        assert spent_by(gw, "key:t") == pytest.approx(vectors.usage.prompt_tokens * 1000 / 1e6)
        with pytest.raises(openai.RateLimitError) as refused:  # the embeddings used up the minute's tokens
            await t.with_options(max_retries=0).chat.completions.create(model="chat", messages=MSG)
        clock.now += 120
        await t.chat.completions.create(model="chat", messages=MSG)
    assert refused.value.body["type"] == "tokens"  # type: ignore[index]
    assert "2 tokens per minute" in refused.value.message
    assert int(refused.value.response.headers["retry-after"]) >= 1


async def test_a_key_can_read_its_own_limits_and_use(sims: Sims) -> None:
    clock = WallClock()
    governance = {
        "pricing": {"gpt-sim": PRICE},
        "teams": {"ops": {"rpm": 100, "budget_usd": 50, "budget_period": "weekly"}},
        "keys": {"u": {"key": "sk-u", "team": "ops", "models": ["chat"], "tpm": 10_000}},
    }
    gateway = running_gateway(governed(sims, governance), wall_clock=clock)
    async with gateway as gw, client(gw, "sk-u") as u, httpx.AsyncClient() as http:
        raw = await u.chat.completions.with_raw_response.create(model="chat", messages=MSG)
        answer = raw.parse()
        mine = await http.get(f"{gw.url}/sidestep/key", headers={"authorization": "Bearer sk-u"})
        nobody = await http.get(f"{gw.url}/sidestep/key")
    async with running_gateway(config_for(sims, {"chat": ["primary/gpt-sim"]})) as plain, httpx.AsyncClient() as http:
        off = await http.get(f"{plain.url}/sidestep/key")
    assert answer.usage is not None
    tokens = answer.usage.prompt_tokens + answer.usage.completion_tokens
    cost = (answer.usage.prompt_tokens * 1000 + answer.usage.completion_tokens * 2000) / 1e6
    assert "x-ratelimit-limit-requests" not in raw.headers  # off unless `rate_limit_headers: true`
    assert mine.status_code == 200
    assert mine.json() == {
        "key": "u",
        "team": "ops",
        "customer": None,
        "models": ["chat"],
        "limits": [
            {"scope": "key:u", "tpm": {"limit": 10_000, "used": tokens}},
            {
                "scope": "team:ops",
                "rpm": {"limit": 100, "used": 1},
                "budget": {
                    "usd": 50,
                    "spent_usd": pytest.approx(cost),
                    "reserved_usd": 0,  # nothing in flight
                    "period": "weekly",
                    "resets_at": "2026-11-30T00:00:00Z",
                },
            },
        ],
    }
    assert nobody.status_code == 401 and nobody.json()["error"]["code"] == "invalid_api_key"
    assert off.status_code == 404 and "governance is off" in off.json()["error"]["message"]


async def test_anthropic_clients_get_refusals_in_their_dialect(claude: Any, sims: Sims) -> None:
    governance = {"keys": {"z": {"key": "sk-z", "budget_usd": 0}, "y": {"key": "sk-y", "models": ["other"]}}}
    async with running_gateway(governed(sims, governance, metrics=True)) as gw:
        spent = anthropic.AsyncAnthropic(base_url=gw.url, api_key="sk-z", max_retries=2)
        narrow = anthropic.AsyncAnthropic(base_url=gw.url, api_key="sk-y", max_retries=0)
        async with spent, narrow:
            with pytest.raises(anthropic.RateLimitError) as budget:
                await spent.messages.create(model="chat", max_tokens=16, messages=MSG)
            with pytest.raises(anthropic.PermissionDeniedError) as model:
                await narrow.messages.create(model="chat", max_tokens=16, messages=MSG)
        async with httpx.AsyncClient() as http:
            page = (await http.get(f"{gw.url}/metrics")).text
    assert budget.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert "budget of key 'z'" in budget.value.message and budget.value.response.headers["x-should-retry"] == "false"
    assert model.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    assert not sims["primary"].sim.received  # nothing reached a provider
    assert 'sidestep_requests_total{endpoint="messages",status="429",provider="",model=""} 1' in page  # no retry


async def test_answers_carry_the_tightest_rate_limit_left(sims: Sims) -> None:
    clock = WallClock()
    governance = {
        "rate_limit_headers": True,
        "teams": {"ops": {"rpm": 3, "tpm": 1_000_000}},
        "keys": {"r": {"key": "sk-r", "team": "ops", "rpm": 10, "tpm": 500_000}},
    }
    gateway = running_gateway(governed(sims, governance), wall_clock=clock)
    async with gateway as gw, client(gw, "sk-r") as r:
        first = await r.chat.completions.with_raw_response.create(model="chat", messages=MSG)
        body = first.parse()
        stream = await r.chat.completions.with_raw_response.create(model="chat", messages=MSG, stream=True)
        [c async for c in stream.parse()]
    assert body.usage is not None
    assert first.headers["x-ratelimit-limit-requests"] == "3"  # the team's 3 is tighter than the key's 10
    assert first.headers["x-ratelimit-remaining-requests"] == "2"
    assert first.headers["x-ratelimit-limit-tokens"] == "500000"  # the key's
    assert first.headers["x-ratelimit-remaining-tokens"] == "500000"  # counted once the answer is in
    assert stream.headers["x-ratelimit-remaining-requests"] == "1"
    tokens = body.usage.prompt_tokens + body.usage.completion_tokens
    assert stream.headers["x-ratelimit-remaining-tokens"] == str(500_000 - tokens)


async def test_a_key_lists_only_the_models_it_may_use(sims: Sims) -> None:
    governance = {"keys": {"n": {"key": "sk-n", "models": ["chat", "backup/*"]}, "w": {"key": "sk-w"}}}
    config = governed(sims, governance)
    config["providers"]["backup"]["models"] = ["gpt-sim"]
    config["providers"]["primary"]["models"] = ["gpt-sim"]
    async with running_gateway(config) as gw, client(gw, "sk-n") as narrow, client(gw, "sk-w") as wide:
        some = [m.id async for m in narrow.models.list()]
        every = [m.id async for m in wide.models.list()]
    assert some == ["chat", "backup/gpt-sim"]
    assert every == ["chat", "other", "primary/gpt-sim", "backup/gpt-sim"]


async def test_a_provider_that_rejects_stream_options_can_be_told_so(sims: Sims, tmp_path: Path) -> None:
    config = governed(sims, {}, request_log=str(tmp_path / "requests.jsonl"))
    config["providers"]["primary"]["drop_fields"] = ["stream_options"]
    async with running_gateway(config) as gw, httpx.AsyncClient() as http:
        body = {"model": "chat", "messages": MSG, "stream": True}
        answer = await http.post(f"{gw.base_url}/chat/completions", json=body)
    assert answer.status_code == 200 and b"[DONE]" in answer.content
    assert "stream_options" not in sims["primary"].sim.received[0].body  # the request log asked; it was dropped
    with pytest.raises(ConfigError, match=r"providers.a.drop_fields: only OpenAI-compatible providers take it"):
        parse_config({"providers": {"a": {"type": "anthropic", "api_key": "k", "drop_fields": ["x"]}}}, env={})


async def test_a_request_every_target_failed_is_logged_with_its_error(sims: Sims, tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    config = governed(sims, {}, request_log=str(path))
    config["routes"]["down"] = ["primary/gpt-sim@503", "backup/gpt-sim@status=400"]
    async with running_gateway(config) as gw, httpx.AsyncClient() as http:
        body = {"model": "down", "messages": MSG}
        answer = await http.post(f"{gw.base_url}/chat/completions", json=body)
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert answer.status_code == 400 and record["status"] == 400  # the caller error comes back as it was
    assert record["error"] == "backup returned HTTP 400: Simulated error 400." and "provider" not in record
    assert [a["status"] for a in record["attempts"]] == [503, 400]
