"""Hostile input over real HTTP on loopback: bodies, model names and headers an attacker controls get a
clear 4xx in the client's format, never a 500, a traceback in the log or a request the gateway should not send."""

from __future__ import annotations

import logging

import httpx
import pytest

from sidestep.testing import RunningSim, config_for, running_gateway

Sims = dict[str, RunningSim]
DEEP = 100_000


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/v1/chat/completions", b'{"model":"chat","messages":%s}'),
        ("/v1/messages", b'{"model":"chat","max_tokens":5,"messages":%s}'),
        ("/v1/chat/completions", b'{"model":%s}'),
    ],
)
async def test_json_nested_too_deep_is_a_400_without_a_traceback(
    sims: Sims, caplog: pytest.LogCaptureFixture, path: str, where: bytes
) -> None:
    body = where % (b"[" * DEEP + b"]" * DEEP)
    config = config_for(sims, {"chat": ["primary/m"]})
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        with caplog.at_level(logging.ERROR):
            answer = await http.post(path, content=body)
    assert answer.status_code == 400
    assert "nested too deeply" in answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sims["primary"].sim.received == []
