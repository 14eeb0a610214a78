"""Hostile input over real HTTP on loopback: bodies, model names and headers an attacker controls get a
clear 4xx in the client's format, never a 500, a traceback in the log or a request the gateway should not send."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import httpx
import pytest

from sidestep.log import event
from sidestep.testing import RunningSim, config_for, running_gateway
from tests.conftest import Sdk

Sims = dict[str, RunningSim]
DEEP = 100_000
MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/v1/chat/completions", b'{"model":"chat","messages":%s}'),
        ("/v1/messages", b'{"model":"chat","max_tokens":5,"messages":%s}'),
        ("/v1/chat/completions", b'{"model":%s}'),
        ("/v1/responses", b'{"model":"chat","input":%s}'),
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


async def test_a_stranger_hears_401_before_the_body_is_decoded(sims: Sims, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    config = config_for(sims, {"chat": ["primary/m"]}, server={"request_log": str(log)})
    config["governance"] = {"keys": {"alice": {"key": "sk-alice"}, "off": {"key": "sk-off", "enabled": False}}}
    valid = b'{"model":"chat","messages":[{"role":"user","content":"hi"}]}'
    deep = b'{"model":"chat","messages":' + b"[" * DEEP + b"]" * DEEP + b"}"
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        answers = [
            await http.post(path, content=body, headers=headers)
            for path in ("/v1/chat/completions", "/v1/messages")
            for body in (valid, deep, b"{not json")
            for headers in ({}, {"authorization": "Bearer sk-wrong"}, {"x-api-key": "sk-off"})
        ]
        keyed = await http.post("/v1/chat/completions", content=b"{not json", headers={"x-api-key": "sk-alice"})
    assert [a.status_code for a in answers] == [401] * len(answers)
    kinds = {a.json()["error"].get("code") or a.json()["error"]["type"] for a in answers}
    assert kinds == {"invalid_api_key", "authentication_error"}  # OpenAI's code, Anthropic's type
    assert keyed.status_code == 400  # a known caller hears what is wrong with the body
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["status"] for r in records] == [401] * len(answers)  # refusals are still logged …
    assert [r.get("requested") for r in records] == [None] * len(
        answers
    )  # … and name no model: the body was never read
    assert sims["primary"].sim.received == []


def test_logged_values_cannot_break_the_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("sidestep.test_forging")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # not what other tests left on its parents
    try:
        forged = 'm\nERROR event=breaker_open target=x\r\u2028\x85\x1b[31m"q" \\'
        event(logger, logging.WARNING, "attempt_failed", target=f"primary/{forged}", reason="plain", empty="")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0] == (
        'WARNING event=attempt_failed target="primary/m\\nERROR event=breaker_open target=x\\r\\u2028\\u0085'
        '\\u001b[31m\\"q\\" \\\\" reason=plain empty=""'
    )


ESCAPED = {  # what a client wrote → the one path segment the provider must receive
    "a#b": "a%23b",
    "a b": "a%20b",
    "x?y=1": "x%3Fy%3D1",
    "v1/extra": "v1%2Fextra",
    "модель": "%D0%BC%D0%BE%D0%B4%D0%B5%D0%BB%D1%8C",
}


@pytest.mark.parametrize(
    ("kind", "path"),
    [("gemini", "/v1beta/models/{}:generateContent"), ("azure", "/openai/deployments/{}/chat/completions")],
)
async def test_a_model_name_is_one_escaped_path_segment(sims: Sims, sdk: Sdk, kind: str, path: str) -> None:
    base = f"http://127.0.0.1:{sims['primary'].port}"
    config = {"providers": {"gem": {"type": kind, "base_url": base, "api_key": "key-gem"}}, "routes": {}}
    async with running_gateway(config) as gw:
        client = sdk(gw.base_url)
        for name, segment in ESCAPED.items():
            raw = await client.chat.completions.with_raw_response.create(model=f"gem/{name}", messages=MSG)
            assert sims["primary"].sim.received[-1].path == path.format(segment)
            # The served model is echoed in a header: past printable ASCII it is percent-encoded, never a dead answer.
            assert raw.headers["x-sidestep-model"] == (name if name.isascii() else segment)


@pytest.mark.parametrize(
    "name",
    [
        "gem/../../admin/secret?x=",
        "gem/..",
        "gem/a/./b",
        "gem/a\r\nx-evil: 1",
        "gem/a\nERROR forged",
        "gem/" + "a" * 300,
    ],
)
async def test_a_name_that_is_no_model_id_is_refused_400(
    sims: Sims, sdk: Sdk, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    base = f"http://127.0.0.1:{sims['primary'].port}"
    config = {"providers": {"gem": {"type": "gemini", "base_url": base, "api_key": "key-gem"}}, "routes": {}}
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        with caplog.at_level(logging.INFO):
            openai_style = await http.post("/v1/chat/completions", json={"model": name, "messages": MSG})
            fallback = await http.post(
                "/v1/chat/completions", json={"model": "gem/m", "fallbacks": [name], "messages": MSG}
            )
            claude = await http.post("/v1/messages", json={"model": name, "max_tokens": 5, "messages": MSG})
    assert [a.status_code for a in (openai_style, fallback, claude)] == [400, 400, 400]
    assert openai_style.json()["error"]["code"] == "invalid_model"
    assert fallback.json()["error"]["param"] == "fallbacks"
    assert claude.json()["type"] == "error" and "not a valid model name" in claude.json()["error"]["message"]
    assert sims["primary"].sim.received == []
    assert not [r for r in caplog.records if "forged" in r.getMessage()]
