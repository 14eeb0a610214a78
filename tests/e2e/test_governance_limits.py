"""A budget's reservation reads the output limit wherever the client's API declares it: `max_completion_tokens`
(OpenAI chat), `max_output_tokens` (Responses), `max_tokens` (Anthropic), `generationConfig.maxOutputTokens`
(google-genai), `inferenceConfig.maxTokens` (boto3 Converse).

The same story for every SDK, over real HTTP to a gateway whose route answers after 0.6 s (the simulator): a
request in flight with a small declared limit holds little, so a second request beside it is served; one with a
large limit holds its worst case — more than the key's budget — so a second request beside it is refused in the
client's own dialect, as OpenAI chat clients always were. Either way the reservation is released when the answer
is in, and the key goes on being served. `reserve_output_tokens` (the default when no limit is read) is 1: a
limit left unread would hold nothing and let the second request through."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import boto3
import httpx
import openai
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from sidestep.testing import RunningSim, config_for, running_gateway
from tests.sim_helpers import MSG, spent_by

Sims = dict[str, RunningSim]
KEY = "sk-limits"
MODEL = "gpt-sim@latency=0.6"  # the model a fault suffix names: priced as it is
PRICE = {"input": 1000.0, "output": 2000.0}  # USD per million tokens
BUDGET = 1.0
SMALL, LARGE = 10, 1000  # output tokens: $0.02 and $2.00 at the output price
Ask = Callable[[int], Awaitable[None]]  # one request declaring its output limit; raises when refused


def governed(sims: Sims) -> dict[str, Any]:
    config = config_for(sims, {"chat": [f"primary/{MODEL}"]})
    config["governance"] = {
        "pricing": {MODEL: PRICE},
        "reserve_output_tokens": 1,
        "keys": {"lim": {"key": KEY, "budget_usd": BUDGET}},
    }
    return config


def openai_chat(gw: Any) -> tuple[Ask, Callable[[], Awaitable[None]]]:
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=KEY, timeout=20, max_retries=0)

    async def ask(limit: int) -> None:
        await client.chat.completions.create(model="chat", messages=MSG, max_completion_tokens=limit)

    return ask, client.close


def openai_responses(gw: Any) -> tuple[Ask, Callable[[], Awaitable[None]]]:
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=KEY, timeout=20, max_retries=0)

    async def ask(limit: int) -> None:
        await client.responses.create(model="chat", input="Tell me about failover", max_output_tokens=limit)

    return ask, client.close


def anthropic_messages(gw: Any) -> tuple[Ask, Callable[[], Awaitable[None]]]:
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key=KEY, timeout=20, max_retries=0)

    async def ask(limit: int) -> None:
        await client.messages.create(model="chat", max_tokens=limit, messages=MSG)

    return ask, client.close


def google_genai(gw: Any) -> tuple[Ask, Callable[[], Awaitable[None]]]:
    client = genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(base_url=gw.url, timeout=20_000))

    async def ask(limit: int) -> None:
        config = genai_types.GenerateContentConfig(max_output_tokens=limit)
        await client.aio.models.generate_content(model="chat", contents="Tell me about failover", config=config)

    return ask, client.aio.aclose


def boto3_converse(gw: Any) -> tuple[Ask, Callable[[], Awaitable[None]]]:
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="not-checked", region_name="us-east-1"
    )
    retries = BotoConfig(retries={"total_max_attempts": 1}, read_timeout=20, connect_timeout=5)
    client = session.client("bedrock-runtime", endpoint_url=gw.url, config=retries)

    def add_key(request: Any, **_: Any) -> None:
        request.headers["x-api-key"] = KEY  # beside boto3's SigV4 signature, as the README says

    client.meta.events.register("before-send.bedrock-runtime.*", add_key)
    messages = [{"role": "user", "content": [{"text": "Tell me about failover"}]}]

    async def ask(limit: int) -> None:
        call = client.converse
        await asyncio.to_thread(call, modelId="chat", messages=messages, inferenceConfig={"maxTokens": limit})

    async def close() -> None:
        client.close()

    return ask, close


REFUSALS = (openai.APIStatusError, anthropic.APIStatusError, genai_errors.APIError, ClientError)  # each SDK's own


def refusal(exc: BaseException) -> tuple[int | None, str]:
    """(status, message) of a refusal as each SDK raises it."""
    if isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        return exc.status_code, exc.message
    if isinstance(exc, genai_errors.APIError):
        return exc.code, str(exc.message)
    assert isinstance(exc, ClientError)
    return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Message"]


async def reserved(http: httpx.AsyncClient, gw: Any) -> float:
    own = (await http.get(f"{gw.url}/sidestep/key", headers={"x-api-key": KEY})).json()
    return float(own["limits"][0]["budget"]["reserved_usd"])


async def held(http: httpx.AsyncClient, gw: Any) -> float:
    """What the request in flight holds, once the gateway has admitted it."""
    for _ in range(250):
        now = await reserved(http, gw)
        if now:
            return now
        await asyncio.sleep(0.02)
    raise AssertionError("no reservation was made")


CLIENTS = [openai_chat, openai_responses, anthropic_messages, google_genai, boto3_converse]


@pytest.mark.parametrize("make", CLIENTS, ids=lambda make: make.__name__)
async def test_a_request_in_flight_holds_the_worst_case_its_declared_limit_allows(
    sims: Sims, make: Callable[[Any], tuple[Ask, Callable[[], Awaitable[None]]]]
) -> None:
    async with running_gateway(governed(sims)) as gw, httpx.AsyncClient() as http:
        ask, close = make(gw)
        try:
            slow = asyncio.ensure_future(ask(SMALL))
            small = await held(http, gw)
            await ask(SMALL)  # beside a small reservation: served
            await slow
            assert await reserved(http, gw) == 0

            slow = asyncio.ensure_future(ask(LARGE))
            large = await held(http, gw)
            with pytest.raises(REFUSALS) as refused:
                await ask(SMALL)
            await slow  # the request holding the reservation is served in full
            assert await reserved(http, gw) == 0  # and releases what it held
            spent = spent_by(gw, "key:lim")
            await ask(SMALL)  # the budget was never spent: the next request is served
        finally:
            await close()
    status, message = refusal(refused.value)
    assert status == 429 and "held by requests in flight" in message
    # The prompt is a few dozen tokens at $0.001 each; the output's worst case is the declared limit.
    assert SMALL * PRICE["output"] / 1e6 < small < 0.2
    assert LARGE * PRICE["output"] / 1e6 < large < LARGE * PRICE["output"] / 1e6 + 0.2
    assert 0 < spent < BUDGET  # what the answers cost, not what was reserved
