"""The cache for every client format it keeps, with each format's own SDK: the legacy completions (`openai`
`completions.create`, whole and streamed), the Responses API (never for provider-side state), Gemini's
`generateContent` (google-genai), token counts, rerank (`cohere`) and moderations — a hit after a miss, no shared
entry between requests that differ only where the answer does, and what is bypassed. Bedrock's Converse (boto3)
is in `test_cache_bedrock.py`; the table itself in `tests/plugins/test_cache_cacheable.py`."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from google.genai import types

from sidestep.testing import RunningSim, config_for, running_gateway
from tests.conftest import Sdk
from tests.e2e.test_cache_semantic import PARAPHRASE, QUESTION
from tests.e2e.test_gemini_clients import Gemini, gemini  # noqa: F401 (a fixture)
from tests.e2e.test_media import co  # noqa: F401 (a fixture)
from tests.e2e.test_media import config as media_config
from tests.e2e.test_native_providers import native_config
from tests.sim_helpers import MSG

Sims = dict[str, RunningSim]
PROMPT = "Once upon a time in a gateway"
USAGE: Any = {"include_usage": True}
DEEP = b'{"model": "text", "temperature": 0, "prompt": "p", "n": ' + b'{"deep": ' * 200 + b"1" + b"}" * 200 + b"}"
JSON = {"content-type": "application/json"}


def received(sims: Sims, name: str = "primary") -> int:
    return len(sims[name].sim.received)


# -- the legacy completions ----------------------------------------------------------------------------------


async def complete(c: openai.AsyncOpenAI, **extra: Any) -> tuple[str, str | None]:
    """(the completion's text, its x-sidestep-cache header)"""
    extra.setdefault("temperature", 0)
    extra.setdefault("prompt", PROMPT)
    extra.setdefault("max_tokens", 40)
    raw = await c.completions.with_raw_response.create(model="text", **extra)
    return raw.parse().choices[0].text, raw.headers.get("x-sidestep-cache")


async def test_completions_are_cached_and_replayed_as_a_stream(sdk: Sdk, sims: Sims) -> None:
    config = config_for(sims, {"text": ["primary/davinci-002"]})
    config["cache"] = {}
    async with running_gateway(config) as gw:
        c = sdk(gw.base_url)
        first = await complete(c)
        again = await complete(c, user="someone-else")
        raw = await c.completions.with_raw_response.create(
            model="text", prompt=PROMPT, max_tokens=40, temperature=0, stream=True, stream_options=USAGE
        )
        chunks = [chunk async for chunk in raw.parse()]
        others = [
            await complete(c, max_tokens=41),
            await complete(c, prompt=PROMPT + "!"),
            await complete(c, echo=True),
        ]
    assert first[1] == "miss" and again == (first[0], "hit") and first[0]
    assert raw.headers["x-sidestep-cache"] == "hit" and raw.headers["content-type"] == "text/event-stream"
    assert "".join(chunk.choices[0].text for chunk in chunks if chunk.choices) == first[0]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert [header for _, header in others] == ["miss"] * 3
    assert received(sims) == 4


async def test_completions_that_a_stream_could_not_carry_are_not_cached(sdk: Sdk, sims: Sims) -> None:
    config = config_for(sims, {"text": ["primary/davinci-002"]})
    config["cache"] = {"nondeterministic": True}
    async with running_gateway(config) as gw:
        c = sdk(gw.base_url)
        logprobs = [await complete(c, logprobs=1) for _ in range(2)]
        several = [await complete(c, prompt=["one", "two"]) for _ in range(2)]
        tokens = [await complete(c, prompt=[1, 2, 3]) for _ in range(2)]
        streamed = await c.completions.create(model="text", prompt=PROMPT, max_tokens=40, temperature=0, stream=True)
        text = "".join([chunk.choices[0].text async for chunk in streamed if chunk.choices])
        after = await complete(c)  # the streamed answer was stored, reassembled
    assert [h for _, h in logprobs + several + tokens] == ["bypass"] * 6
    assert after == (text, "hit") and received(sims) == 7


async def test_completions_without_a_fixed_temperature_bypass(sdk: Sdk, sims: Sims) -> None:
    config = config_for(sims, {"text": ["primary/davinci-002"]})
    config["cache"] = {}
    async with running_gateway(config) as gw:
        c = sdk(gw.base_url)
        unset = [await complete(c, temperature=None) for _ in range(2)]
        seeded = [await complete(c, temperature=0.8, seed=4) for _ in range(2)]
        two = await complete(c, n=2)
    assert [h for _, h in unset] == ["bypass"] * 2 and [h for _, h in seeded] == ["miss", "hit"] and two[1] == "bypass"


# -- the Responses API: never for state kept at the provider -------------------------------------------------


async def test_responses_with_provider_state_are_never_cached(sdk: Sdk, sims: Sims) -> None:
    config = native_config(sims, {"r": ["primary/gpt-4o"]})
    config["cache"] = {}
    async with running_gateway(config) as gw:
        c = sdk(gw.base_url)

        async def ask(**extra: Any) -> str | None:
            raw = await c.responses.with_raw_response.create(model="r", input="hello", temperature=0, **extra)
            return raw.headers.get("x-sidestep-cache")

        stored = await c.responses.create(model="r", input="remember this", store=True)
        stateful = [
            await ask(previous_response_id=stored.id),  # served by the target that keeps it (no 400 from the cache)
            await ask(previous_response_id=stored.id),
            await ask(store=True),
            await ask(store=True),
            await ask(background=True),
        ]
        plain = [await ask(), await ask(store=False), await ask(include=["reasoning.encrypted_content"])]
    assert stateful == ["bypass"] * 5
    assert plain == ["miss", "hit", "miss"]  # `include` changes the answer: its own entry
    assert received(sims) == 8


# -- Gemini: generationConfig and the path's model are in the key --------------------------------------------


async def test_gemini_requests_differing_only_in_generation_config_do_not_share(gemini: Gemini, sims: Sims) -> None:  # noqa: F811
    config = native_config(sims, {"one": ["third/gemini-2.5-flash"]})
    config["cache"] = {}
    configs = [
        types.GenerateContentConfig(temperature=0),
        types.GenerateContentConfig(temperature=0),
        types.GenerateContentConfig(temperature=0, presence_penalty=0.5),
        types.GenerateContentConfig(temperature=0, response_mime_type="application/json"),
        types.GenerateContentConfig(temperature=0.9, seed=7),
        types.GenerateContentConfig(temperature=0.9, seed=7),
        types.GenerateContentConfig(temperature=0.9, seed=8),
        types.GenerateContentConfig(temperature=0.9),
        types.GenerateContentConfig(temperature=0, candidate_count=2),
    ]
    async with running_gateway(config) as gw:
        client = gemini(gw.url)
        answers = [await client.aio.models.generate_content(model="one", contents="hi", config=c) for c in configs]
    headers = [(a.sdk_http_response.headers or {}).get("x-sidestep-cache") for a in answers if a.sdk_http_response]
    assert headers == ["miss", "hit", "miss", "miss", "miss", "hit", "miss", "bypass", "bypass"]
    assert received(sims, "third") == 7


async def test_token_counts_are_cached_per_format(gemini: Gemini, sims: Sims, claude: Any) -> None:  # noqa: F811
    config = native_config(sims, {"one": ["third/gemini-2.5-flash"], "ant": ["backup/claude-sonnet-4-5"]})
    config["cache"] = {}
    async with running_gateway(config) as gw:
        client = gemini(gw.url)
        counts = [await client.aio.models.count_tokens(model="one", contents=text) for text in ("a b", "a b", "c")]
        anthropic = claude(gw.url)
        raw = [await anthropic.messages.with_raw_response.count_tokens(model="ant", messages=MSG) for _ in range(2)]
    assert counts[0].total_tokens == counts[1].total_tokens and received(sims, "third") == 2
    assert [r.headers["x-sidestep-cache"] for r in raw] == ["miss", "hit"] and received(sims, "backup") == 1
    assert (await raw[1].parse()).input_tokens == (await raw[0].parse()).input_tokens


# -- relayed-only APIs: rerank and moderations are JSON and deterministic -------------------------------------


async def test_rerank_and_moderations_are_cached(sdk: Sdk, sims: Sims, co: Any) -> None:  # noqa: F811
    config = media_config(sims, ["co/rerank-v3.5"], cache={})
    config["routes"]["mod"] = ["up/omni-moderation-latest"]
    config["routes"]["img"] = ["up/gpt-image-1"]
    docs = ["a gateway", "a cache", "a river"]
    async with running_gateway(config) as gw:
        cohere = co(gw.url)
        ranked = [
            await cohere.with_raw_response.rerank(model="media", query="gateway", documents=docs, top_n=n)
            for n in (2, 2, 1)
        ]
        c = sdk(gw.base_url)
        moderated = [await c.moderations.with_raw_response.create(model="mod", input="hello") for _ in range(2)]
        images = [await c.images.with_raw_response.generate(model="img", prompt="a cat") for _ in range(2)]
    assert [r.headers.get("x-sidestep-cache") for r in ranked] == ["miss", "hit", "miss"]
    assert ranked[1].data.results == ranked[0].data.results and received(sims, "third") == 2
    assert [r.headers.get("x-sidestep-cache") for r in moderated] == ["miss", "hit"]
    assert moderated[1].parse().results[0].flagged == moderated[0].parse().results[0].flagged
    assert [r.headers.get("x-sidestep-cache") for r in images] == [None, None]  # never cached: no header at all


# -- bad input never poisons an entry ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "text", "prompt": "' + b"x" * 300_000 + b'", "temperature": 0}',  # over max_body_bytes
        b'{"model": "text", "temperature": 0, "prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # nested
        DEEP,  # nested in a field the cache would key
        b'{"model": "text", "temperature": 0, "prompt": "' + PROMPT.encode() + b'"',  # cut short
    ],
)
async def test_bad_completions_bodies_never_poison_the_cache(sdk: Sdk, sims: Sims, body: bytes) -> None:
    config = config_for(sims, {"text": ["primary/davinci-002"]}, server={"max_body_bytes": 200_000})
    config["cache"] = {}
    async with running_gateway(config) as gw:
        async with httpx.AsyncClient(timeout=20) as http:
            bad = await http.post(gw.base_url + "/completions", content=body, headers=JSON)
        c = sdk(gw.base_url)
        good = [await complete(c), await complete(c)]
    assert 400 <= bad.status_code < 500 and "error" in bad.json()
    assert [h for _, h in good] == ["miss", "hit"] and good[0][0]


# -- the semantic index: Gemini's body beyond its conversation is the neighbour's bucket ------------------------


async def test_a_gemini_paraphrase_is_a_semantic_hit_within_the_same_config(gemini: Gemini, sims: Sims) -> None:  # noqa: F811
    config = native_config(sims, {"one": ["third/gemini-2.5-flash"], "embed": ["primary/embed-sim"]})
    config["cache"] = {"semantic": {"route": "embed", "models": ["one"], "threshold": 0.85}}
    plain = types.GenerateContentConfig(temperature=0)
    other = types.GenerateContentConfig(temperature=0, presence_penalty=0.5)
    async with running_gateway(config) as gw:
        client = gemini(gw.url)
        asked = [
            await client.aio.models.generate_content(model="one", contents=text, config=c)
            for text, c in ((QUESTION, plain), (PARAPHRASE, plain), (PARAPHRASE, other))
        ]
    headers = [a.sdk_http_response.headers or {} for a in asked if a.sdk_http_response]
    assert [h.get("x-sidestep-cache") for h in headers] == ["miss", "semantic-hit", "miss"]
    assert asked[1].text == asked[0].text and float(headers[1]["x-sidestep-cache-similarity"]) >= 0.85
    assert received(sims, "third") == 2
