"""Bedrock's Converse in the cache, with boto3's `bedrock-runtime` client: a Converse answer stored and served
again, to `converse` and replayed as a `converse_stream` event stream (botocore's parser checks every frame);
the path's model, `inferenceConfig` and `additionalModelRequestFields` in the key; InvokeModel never cached;
hostile bodies never stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sidestep.testing import RunningSim, running_gateway, running_simulators
from tests.e2e.test_bedrock_clients import ASK, Boto, bedrock, call, config, text_of  # noqa: F401 (a fixture)

Sims = dict[str, RunningSim]
DETERMINISTIC = {"maxTokens": 200, "temperature": 0}

pytestmark = pytest.mark.filterwarnings(  # as in test_bedrock_clients: botocore's pool drops closed sockets
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture
async def sims() -> AsyncIterator[Sims]:
    async with running_simulators("openai", "claude", "aws") as running:
        yield running


def cached(sims: Sims) -> dict[str, Any]:
    return config(sims, {"conv": ["aws/m"], "other": ["aws/m"], "oa": ["oai/gpt-sim"]}, cache={})


def header(answer: dict[str, Any]) -> str | None:
    value: str | None = answer["ResponseMetadata"]["HTTPHeaders"].get("x-sidestep-cache")
    return value


async def test_converse_is_cached_and_replayed_as_a_converse_stream(sims: Sims, bedrock: Boto) -> None:  # noqa: F811
    async with running_gateway(cached(sims)) as gw:
        client = bedrock(gw.url)
        first = await call(client.converse, modelId="conv", messages=ASK, inferenceConfig=DETERMINISTIC)
        again = await call(client.converse, modelId="conv", messages=ASK, inferenceConfig=DETERMINISTIC)

        def streamed() -> tuple[str | None, str, list[dict[str, Any]]]:
            answer = client.converse_stream(modelId="conv", messages=ASK, inferenceConfig=DETERMINISTIC)
            headers = answer["ResponseMetadata"]["HTTPHeaders"]
            return headers.get("x-sidestep-cache"), headers["content-type"], list(answer["stream"])

        cache, media, events = await asyncio.to_thread(streamed)
    text = first["output"]["message"]["content"][0]["text"]
    assert header(first) == "miss" and header(again) == "hit" and text
    assert again["output"] == first["output"] and again["stopReason"] == first["stopReason"]
    assert cache == "hit" and media == "application/vnd.amazon.eventstream" and text_of(events) == text
    assert events[-1]["metadata"]["usage"]["outputTokens"] > 0
    assert len(sims["aws"].sim.received) == 1


async def test_what_changes_a_converse_answer_is_in_its_key(sims: Sims, bedrock: Boto) -> None:  # noqa: F811
    variants: list[dict[str, Any]] = [
        {"modelId": "conv", "inferenceConfig": DETERMINISTIC},
        {"modelId": "other", "inferenceConfig": DETERMINISTIC},  # the path's model
        {"modelId": "conv", "inferenceConfig": {**DETERMINISTIC, "maxTokens": 201}},
        {"modelId": "conv", "inferenceConfig": {**DETERMINISTIC, "stopSequences": ["END"]}},
        {"modelId": "conv", "inferenceConfig": DETERMINISTIC, "additionalModelRequestFields": {"top_k": 5}},
        {"modelId": "conv", "inferenceConfig": DETERMINISTIC, "additionalModelRequestFields": {"anything": 1}},
        {"modelId": "conv", "inferenceConfig": DETERMINISTIC, "system": [{"text": "Be brief."}]},
        {"modelId": "conv", "inferenceConfig": DETERMINISTIC, "requestMetadata": {"team": "a"}},  # logs only
        {"modelId": "conv", "inferenceConfig": {"maxTokens": 200}},  # the model's own temperature
        {"modelId": "conv", "inferenceConfig": {"maxTokens": 200, "temperature": 0.5}},
    ]
    async with running_gateway(cached(sims)) as gw:
        client = bedrock(gw.url)
        answers = [await call(client.converse, messages=ASK, **variant) for variant in variants]
    assert [header(a) for a in answers] == ["miss"] * 7 + ["hit", "bypass", "bypass"]
    assert len(sims["aws"].sim.received) == 9


async def test_converse_answers_are_kept_per_format_but_invoke_is_never_cached(
    sims: Sims,
    bedrock: Boto,  # noqa: F811
) -> None:
    async with running_gateway(cached(sims)) as gw:
        client = bedrock(gw.url)
        served = [await call(client.converse, modelId="oa", messages=ASK, inferenceConfig=DETERMINISTIC)]
        served += [await call(client.converse, modelId="oa", messages=ASK, inferenceConfig=DETERMINISTIC)]
        body = (
            b'{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "temperature": 0,'
            b' "messages": [{"role": "user", "content": "hi"}]}'
        )
        invoked = [await call(client.invoke_model, modelId="conv", body=body) for _ in range(2)]
    assert [header(a) for a in served] == ["miss", "hit"]  # an OpenAI target's answer, translated, then kept
    assert served[1]["output"] == served[0]["output"]
    assert [header(a) for a in invoked] == [None, None] and len(sims["aws"].sim.received) == 2


@pytest.mark.parametrize(
    "body",
    [
        b'{"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"temperature": 0},'
        b' "additionalModelRequestFields": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000 + b"}",  # deeply nested
        b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b', "inferenceConfig": {"temperature": 0}}',
        b'{"messages": [{"role": "user", "content": "hi"}], "inferenceConfig": {"temperature": 0}}',  # not blocks
        b'{"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"temperature": 0',
    ],
)
async def test_hostile_converse_bodies_never_poison_the_cache(sims: Sims, bedrock: Boto, body: bytes) -> None:  # noqa: F811
    async with running_gateway(cached(sims)) as gw:
        async with httpx.AsyncClient(timeout=20) as http:
            bad = await http.post(f"{gw.url}/model/conv/converse", content=body)
        client = bedrock(gw.url)
        good = [
            await call(client.converse, modelId="conv", messages=ASK, inferenceConfig=DETERMINISTIC) for _ in range(2)
        ]
    assert bad.status_code == 400 and "message" in bad.json()
    assert [header(a) for a in good] == ["miss", "hit"]
