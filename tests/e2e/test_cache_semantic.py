"""The semantic cache, with the official SDK and the simulator's similarity-preserving embeddings: a paraphrase
is served the cached answer, an unrelated question or one below the threshold is not, nor a conversation with
tool results, nor a model that did not opt in; an embeddings route that fails is a miss, never an error."""

from __future__ import annotations

from typing import Any

import numpy as np
import openai

from sidestep.plugins.cache.semantic import SemanticIndex
from sidestep.testing import FakeClock, RunningSim, config_for, running_gateway

Sims = dict[str, RunningSim]
QUESTION = "Tell me about failover in LLM gateways"
PARAPHRASE = "Please tell me about failover in LLM gateways!"  # cosine ~0.87 with the simulator's embeddings


def semantic(sims: Sims, embed: list[str] | None = None, **options: Any) -> dict[str, Any]:
    routes = {"chat": ["primary/gpt-sim"], "other": ["primary/gpt-sim"], "embed": embed or ["backup/embed-sim"]}
    config = config_for(sims, routes)
    config["cache"] = {"semantic": {"route": "embed", "models": ["chat"], "threshold": 0.85, **options}}
    return config


def chats(sims: Sims) -> int:
    return sum(1 for r in sims["primary"].sim.received if r.path.endswith("/chat/completions"))


def embeddings(sims: Sims) -> int:
    return sum(1 for r in sims["backup"].sim.received if r.path.endswith("/embeddings"))


async def ask(gw: Any, text: str, model: str = "chat", **extra: Any) -> tuple[str, str | None, str | None]:
    """(the answer, x-sidestep-cache, x-sidestep-cache-similarity)"""
    messages = extra.pop("messages", [{"role": "user", "content": text}])
    async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="k", max_retries=0, timeout=20) as c:
        raw = await c.chat.completions.with_raw_response.create(model=model, messages=messages, temperature=0, **extra)
    headers = raw.headers
    return (
        raw.parse().choices[0].message.content or "",
        headers.get("x-sidestep-cache"),
        headers.get("x-sidestep-cache-similarity"),
    )


async def test_a_paraphrase_is_served_the_cached_answer(sims: Sims) -> None:
    async with running_gateway(semantic(sims)) as gw:
        first = await ask(gw, QUESTION)
        again = await ask(gw, PARAPHRASE)
        unrelated = await ask(gw, "What is the weather in Paris today?")
    assert first[1] == "miss" and again[:2] == (first[0], "semantic-hit") and unrelated[1] == "miss"
    assert again[2] is not None and 0.85 <= float(again[2]) < 0.9
    assert chats(sims) == 2 and embeddings(sims) == 3  # the paraphrase never reached the chat provider


async def test_below_the_threshold_other_parameters_or_another_tenant_bucket_is_a_miss(sims: Sims) -> None:
    async with running_gateway(semantic(sims, threshold=0.9)) as gw:
        await ask(gw, QUESTION)
        below = await ask(gw, PARAPHRASE)
        other_params = await ask(gw, QUESTION + " please", max_tokens=7)
    assert below[1] == "miss" and other_params[1] == "miss" and chats(sims) == 3


async def test_tool_results_and_models_that_did_not_opt_in_skip_the_semantic_lookup(sims: Sims) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}

    def with_tool(result: str) -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": result},
        ]

    async with running_gateway(semantic(sims, threshold=0.5)) as gw:
        tooled = [await ask(gw, "", messages=with_tool(r)) for r in ("sunny, 21 C", "sunny, 21 C!")]
        plain = [await ask(gw, t, model="other") for t in (QUESTION, PARAPHRASE)]
    assert [t[1] for t in tooled + plain] == ["miss"] * 4 and chats(sims) == 4
    assert embeddings(sims) == 0  # neither kind was ever embedded


async def test_an_embeddings_route_that_fails_is_a_miss_not_an_error(sims: Sims) -> None:
    async with running_gateway(semantic(sims, embed=["backup/embed-sim@503"])) as gw:
        answers = [await ask(gw, text) for text in (QUESTION, PARAPHRASE)]
        cache = gw.gateway.plugin("cache")
    assert [a[1] for a in answers] == ["miss", "miss"] and all(a[0] for a in answers) and chats(sims) == 2
    assert cache is not None and "sidestep_cache_semantic_embedding_failures_total 2" in cache.exposition()


def test_the_index_is_bounded_and_forgets_what_expired() -> None:
    clock = FakeClock(0.0)
    index = SemanticIndex(max_entries=2, clock=clock)
    a, b, c = (np.eye(4, dtype=np.float32)[i] for i in range(3))
    index.add("t", "a", a, expires=10.0)
    index.add("t", "b", b, expires=20.0)
    index.add("t", "c", c, expires=20.0)  # the oldest ("a") goes
    assert len(index) == 2 and index.evictions == 1 and index.nearest("t", a, 0.5) is None
    assert index.nearest("t", b, 0.5) == ("b", 1.0) and index.nearest("other", b, 0.5) is None
    clock.advance(20)
    assert index.nearest("t", b, 0.5) is None and len(index) == 1  # found expired, dropped
