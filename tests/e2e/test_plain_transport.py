"""A transport with only what `UpstreamResponse` asks — status, headers, `next_chunk`, close — and none of the
optional capabilities (`Pipes`, `Budgeted`): the gateway still answers, streams, fails over and reports a stream
cut mid-way, over real HTTP with the official SDK. Capabilities are declared by a class, never probed."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from sidestep.testing import RunningSim, config_for, running_gateway
from sidestep.transport.body import chunks, read_all
from sidestep.transport.client import HttpClient
from sidestep.transport.types import Timeouts, UpstreamRequest, can_pipe, is_budgeted, is_buffered
from tests.conftest import PlainResponse, PlainTransport, Sdk

MSG = [{"role": "user", "content": "Hello there, plain transport"}]
Sims = dict[str, RunningSim]


def plain(into: list[PlainTransport]) -> Callable[[HttpClient], PlainTransport]:
    def wrap(client: HttpClient) -> PlainTransport:
        into.append(PlainTransport(client))
        return into[-1]

    return wrap


class LooksLikePipes(PlainResponse):
    """Has every member `Pipes` has, but does not declare it."""

    async def pipe(self, sink: Callable[[bytes], None]) -> None:
        raise AssertionError("a capability is declared, not probed: this must never be called")

    def pause_reading(self) -> None:
        raise AssertionError("never called")

    def resume_reading(self) -> None:
        raise AssertionError("never called")

    def lift_budget(self) -> None:
        raise AssertionError("never called")

    def buffered(self) -> bytes | None:
        raise AssertionError("never called")


async def test_capabilities_are_declared_by_the_class_not_probed(sims: Sims) -> None:
    client = HttpClient(proxy_from_env=False)
    url = f"{sims['primary'].base_url}/chat/completions"
    body = b'{"model": "a", "messages": [{"role": "user", "content": "hi"}]}'
    request = UpstreamRequest("POST", url, [("content-type", "application/json")], body, Timeouts(1, 5, 5))
    try:
        response = await client.send(request)
        assert can_pipe(response) and is_budgeted(response) and is_buffered(response)
        lookalike = LooksLikePipes(response)
        assert not (can_pipe(lookalike) or is_budgeted(lookalike) or is_buffered(lookalike))
        assert b'"choices"' in await read_all(lookalike)
        assert [piece async for piece in chunks(lookalike)] == []  # read to its end: nothing more
        await lookalike.aclose()
    finally:
        await client.aclose()


async def test_answers_and_streams_over_a_plain_transport(sdk: Sdk, sims: Sims) -> None:
    made: list[PlainTransport] = []
    async with running_gateway(config_for(sims, {"chat": ["primary/a"]}), wrap=plain(made)) as gw:
        client = sdk(gw.base_url)
        answer = await client.chat.completions.create(model="chat", messages=MSG)
        stream = await client.chat.completions.create(model="chat", messages=MSG, stream=True)
        seen = [chunk async for chunk in stream]
    assert answer.choices[0].message.content.startswith("Echo from primary")
    text = "".join(c.choices[0].delta.content or "" for c in seen if c.choices)
    assert text == answer.choices[0].message.content
    assert seen[-1].choices[0].finish_reason == "stop"
    assert len(made) == 1 and len(made[0].responses) == 2  # both went through the plain transport
    assert made[0].responses[1].pieces > 1  # the stream was read piece by piece through next_chunk


async def test_a_503_fails_over_on_a_plain_transport(sdk: Sdk, sims: Sims) -> None:
    config = config_for(sims, {"chat": ["primary/a@status=503", "backup/b"]})
    async with running_gateway(config, wrap=plain([])) as gw:
        client = sdk(gw.base_url).chat.completions
        raw = await client.with_raw_response.create(model="chat", messages=MSG, stream=True)
        seen = [chunk async for chunk in raw.parse()]
        whole = await client.with_raw_response.create(model="chat", messages=MSG)
    assert raw.headers["x-sidestep-provider"] == "backup"
    assert "".join(c.choices[0].delta.content or "" for c in seen if c.choices).startswith("Echo from backup")
    assert whole.headers["x-sidestep-provider"] == "backup"


async def test_a_stream_cut_mid_way_ends_with_an_error_event_on_a_plain_transport(sdk: Sdk, sims: Sims) -> None:
    config = config_for(sims, {"chat": ["primary/a@drop_after=3", "backup/b"]})
    async with running_gateway(config, wrap=plain([])) as gw:
        stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
        seen: list[ChatCompletionChunk] = []
        with pytest.raises(openai.APIError, match=r"failed mid-stream|ended the stream"):  # noqa: PT012
            async for chunk in stream:
                seen.append(chunk)  # noqa: PERF401
    assert seen  # content reached the client before the failure
    assert sims["backup"].sim.received == []
