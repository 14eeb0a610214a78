"""A stream cut inside an event, over real HTTP: the client never gets half an event glued to the next one.

The simulator's `drop_mid_event=N` sends N whole events, half of the next one, and cuts the connection. What
reaches the client is then either whole events ending with the gateway's error event (a usage tap held the half
event back, and it is dropped), or whole events and the upstream's half line followed by a cut connection (no
tap: the bytes went out as they came, and nothing can mend a line cut in two). Never a half line with an error
event after it, which every SDK fails to parse (a JSON error, not the gateway's message).
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import openai
import pytest

from sidestep.outcome import Exchange
from sidestep.relay.job import mend
from sidestep.testing import RunningSim, config_for, running_gateway
from tests.conftest import Sdk

MSG = [{"role": "user", "content": "Tell me about streams cut in two"}]
Sims = dict[str, RunningSim]


class UsageLog:
    """An observer that wants usage: the gateway taps the stream for it (whole events only)."""

    wants_usage = True

    def __init__(self) -> None:
        self.errors: list[str | None] = []

    def observe(self, exchange: Exchange) -> None:
        self.errors.append(exchange.error)


async def raw_stream(base_url: str, path: str, body: dict[str, Any]) -> tuple[bytes, Exception | None]:
    """The body's bytes as they came, and the transport error that ended it, if one did."""
    received = b""
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            async with client.stream("POST", base_url.removesuffix("/v1") + path, json=body) as response:
                assert response.status_code == 200
                async for piece in response.aiter_raw():
                    received += piece
        except httpx.TransportError as exc:
            return received, exc
    return received, None


async def read_all_of(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(model="claude", max_tokens=64, messages=MSG) as stream:
        async for _ in stream:
            pass


def whole_events(received: bytes) -> tuple[list[bytes], bytes]:
    """The complete SSE events, each one's data lines checked as JSON (or `[DONE]`), and what trails them."""
    *complete, rest = received.replace(b"\r\n", b"\n").split(b"\n\n")
    for event in complete:
        for line in event.split(b"\n"):
            if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                json.loads(line[5:])  # raises on a half event glued to another
    return complete, rest


@pytest.mark.parametrize("tapped", [False, True])
async def test_an_openai_stream_cut_inside_an_event(sdk: Sdk, sims: Sims, tapped: bool) -> None:
    log = UsageLog()
    config = config_for(sims, {"chat": "primary/a@drop_mid_event=3"})
    async with running_gateway(config, observers=[log] if tapped else []) as gw:
        body = {"model": "chat", "messages": MSG, "stream": True}
        received, error = await raw_stream(gw.base_url, "/v1/chat/completions", body)
        stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
        with pytest.raises((openai.APIError, httpx.TransportError)) as raised:  # never a JSONDecodeError
            _ = [chunk async for chunk in stream]
    complete, rest = whole_events(received)
    assert len(complete) >= 3
    if tapped:  # the half event was held back and dropped: the error event ends a well-formed body
        assert error is None
        assert rest == b""
        assert b"failed mid-stream" in complete[-1]
        assert isinstance(raised.value, openai.APIError)
        assert "failed mid-stream" in raised.value.message
        assert log.errors and all(e is not None and "mid-stream" in e for e in log.errors)
    else:  # the half line went out as it came: the connection is cut, no error event glued to it
        assert isinstance(error, httpx.RemoteProtocolError)
        assert rest and b"error" not in rest
        assert not any(b'"error"' in event for event in complete)


@pytest.mark.parametrize("tapped", [False, True])
async def test_an_anthropic_stream_cut_inside_an_event(sims: Sims, tapped: bool) -> None:
    config = config_for(sims, {"claude": "ant/claude-sim@drop_mid_event=5"})
    config["providers"]["ant"] = {"type": "anthropic", "base_url": sims["primary"].base_url, "api_key": "k"}
    async with running_gateway(config, observers=[UsageLog()] if tapped else []) as gw:
        body = {"model": "claude", "max_tokens": 64, "messages": MSG, "stream": True}
        received, error = await raw_stream(gw.base_url, "/v1/messages", body)
        client = anthropic.AsyncAnthropic(base_url=gw.base_url.removesuffix("/v1"), api_key="k", max_retries=0)
        try:
            with pytest.raises((anthropic.APIError, httpx.TransportError)):  # never a JSONDecodeError
                await read_all_of(client)
        finally:
            await client.close()
    complete, rest = whole_events(received)
    assert len(complete) >= 3
    if tapped:
        assert error is None
        assert rest == b""
        assert b"event: error" in complete[-1]
    else:
        assert isinstance(error, httpx.RemoteProtocolError)
        assert b"error" not in rest


async def test_a_continuation_after_a_cut_inside_an_event_never_glues_the_switch_to_it(sdk: Sdk, sims: Sims) -> None:
    """Same format, `mid_stream: continue`, no tap: the switch comment cannot follow half a line either."""
    route = {"chat": {"fallback": ["primary/a@drop_mid_event=3", "backup/b"], "mid_stream": "continue"}}
    async with running_gateway(config_for(sims, route)) as gw:
        body = {"model": "chat", "messages": MSG, "stream": True}
        received, error = await raw_stream(gw.base_url, "/v1/chat/completions", body)
    complete, rest = whole_events(received)
    assert len(complete) >= 3
    assert isinstance(error, httpx.RemoteProtocolError)
    assert b"sidestep" not in rest


@pytest.mark.parametrize(
    ("tail", "closing"),
    [
        (b"", b""),
        (b'{"a":1}\n\n', b""),
        (b'{"a":1}\r\n\r\n', b""),
        (b"x\r\r", b""),
        (b'data: {"a":1}\n', b"\n"),
        (b'data: {"a":1}\r', b"\r\n"),
        (b'data: {"a":1}\r\n', b"\n"),
        (b'data: {"a"', None),
        (b"event: content_block_delta", None),
    ],
)
def test_mend_says_what_ends_a_cut_event(tail: bytes, closing: bytes | None) -> None:
    assert mend(tail) == closing
