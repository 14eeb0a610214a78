"""The plugin contract: an awaited `pre` for plugins that do I/O, and capabilities a plugin brings without
the gateway naming it (authenticate, endpoints, start/stop), over real HTTP with the official SDK."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from sidestep.errors import BadRequest, Unauthorized
from sidestep.outcome import Exchange
from sidestep.plugins.base import Pipeline
from sidestep.plugins.capabilities import discover
from sidestep.server.types import Endpoint, Request, Response
from sidestep.testing import RunningSim, config_for, running_gateway
from tests.conftest import Sdk

MSG = [{"role": "user", "content": "hi"}]
CACHED = {
    "id": "chatcmpl-cached",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-sim",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "from the cache"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
}


class Cache:
    """Answers in the gateway's place once its (slow) lookup completes: an asyncio event stands in for
    the round trip to Redis."""

    name = "cache"
    wants_usage = False

    def __init__(self) -> None:
        self.lookup_done = asyncio.Event()
        self.looking = asyncio.Event()
        self.calls: list[str] = []

    def pre(self, exchange: Exchange) -> Response | None:
        self.calls.append("pre")
        return None

    async def pre_async(self, exchange: Exchange) -> Response | None:
        self.calls.append("pre_async")
        self.looking.set()
        await self.lookup_done.wait()
        return Response(200, json.dumps(CACHED).encode(), [("content-type", "application/json")])

    def post(self, exchange: Exchange) -> None:
        self.calls.append(f"post {exchange.status}")


async def test_an_awaited_pre_answers_in_the_gateways_place(sdk: Sdk, sims: dict[str, RunningSim]) -> None:
    cache = Cache()
    config = config_for(sims, {"chat": ["primary/gpt-sim"]})
    async with running_gateway(config, plugins=[cache]) as gw:
        assert gw.gateway._pipeline.awaits
        asking = asyncio.ensure_future(sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG))
        await asyncio.wait_for(cache.looking.wait(), 10)
        await asyncio.sleep(0.05)
        assert not asking.done()  # the request waits on the lookup
        cache.lookup_done.set()
        answer = await asyncio.wait_for(asking, 10)
    assert answer.choices[0].message.content == "from the cache"
    assert cache.calls == ["pre", "pre_async", "post 200"]
    assert sims["primary"].sim.received == []  # never asked upstream


class Step:
    wants_usage = False

    def __init__(self, name: str, calls: list[str], *, refuse: bool = False) -> None:
        self.name, self.calls, self.refuse = name, calls, refuse

    def pre(self, exchange: Exchange) -> Response | None:
        self.calls.append(f"pre {self.name}")
        return None

    def post(self, exchange: Exchange) -> None:
        self.calls.append(f"post {self.name} {exchange.status}")


class SlowStep(Step):
    async def pre_async(self, exchange: Exchange) -> Response | None:
        await asyncio.sleep(0)
        self.calls.append(f"pre_async {self.name}")
        if self.refuse:
            raise BadRequest(f"{self.name} says no")
        return None


async def test_awaited_pre_keeps_the_order_and_post_runs_only_for_plugins_whose_pre_ran() -> None:
    calls: list[str] = []
    plugins = [Step("log", calls), SlowStep("quota", calls, refuse=True), Step("cache", calls)]
    pipeline = Pipeline(plugins, discover(plugins).awaiting)
    exchange = Exchange(
        Request("POST", "/v1/chat/completions", "", {}, b""), "r", "chat", "openai", ["m"], False, 0, {}
    )
    with pytest.raises(BadRequest):
        await pipeline.pre_async(exchange)
    assert calls == ["pre log", "pre quota", "pre_async quota", "post quota 400", "post log 400"]


def test_a_pipeline_without_awaited_plugins_is_told_so_when_built() -> None:
    plugins = [Step("log", []), Step("cache", [])]
    assert not Pipeline(plugins, discover(plugins).awaiting).awaits


class Doorman:
    """A plugin the gateway has never heard of: it authenticates from the head, serves an endpoint and
    runs with the server."""

    name = "doorman"
    wants_usage = False

    def __init__(self) -> None:
        self.events: list[str] = []

    def authenticate(self, request: Request) -> str:
        if request.header("x-badge") != "ok":
            raise Unauthorized("Show your badge.")
        return "badge-holder"

    def pre(self, exchange: Exchange) -> Response | None:
        self.events.append(f"pre {exchange.principal}")
        return None

    def post(self, exchange: Exchange) -> None:
        self.events.append("post")

    def endpoints(self) -> dict[str, Endpoint]:
        return {"/doorman": Endpoint("doorman", self._hello)}

    async def _hello(self, request: Request) -> Response:
        return Response(200, b'{"door":"open"}', [("content-type", "application/json")])

    def start(self) -> None:
        self.events.append("start")

    def close(self) -> None:
        self.events.append("close")


async def test_a_plugins_capabilities_are_found_without_the_gateway_naming_it(sims: dict[str, RunningSim]) -> None:
    doorman = Doorman()
    async with running_gateway(config_for(sims, {"chat": ["primary/gpt-sim"]}), plugins=[doorman]) as gw:
        async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="k", max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError, match="Show your badge"):
                await client.chat.completions.create(model="chat", messages=MSG, extra_body={"stream": "bad"})
            answer = await client.chat.completions.create(model="chat", messages=MSG, extra_headers={"x-badge": "ok"})
        async with httpx.AsyncClient() as http:
            door = await http.get(f"{gw.url}/doorman")
        assert answer.choices[0].message.content
    assert door.status_code == 200 and door.json() == {"door": "open"}
    # Refused from the head (a body the stranger sent is never decoded, so its bad field is no 400), no
    # pre ran, so no post; the badge holder's request went through both.
    assert doorman.events == ["start", "pre badge-holder", "post", "close"]
