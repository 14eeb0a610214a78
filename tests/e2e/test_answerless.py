"""A 200 that carries no answer is a failed attempt, in every wire format: the gateway fails over instead
of passing on an error body as a success (OpenAI) or turning it into an empty answer (the others)."""

from __future__ import annotations

from typing import Any

import pytest

from sidestep.testing import RunningSim, running_gateway
from tests.conftest import AttemptLog, Sdk
from tests.sim_helpers import MSG

Sims = dict[str, RunningSim]
WIRES = ["openai", "anthropic", "gemini", "cohere", "bedrock"]


def broken_then_healthy(sims: Sims, wire: str) -> dict[str, Any]:
    """`primary` speaks `wire` and answers 200 with its format's error body; `backup` (OpenAI) is healthy."""
    sims["primary"].sim.set_fault("error_200")
    url = f"http://127.0.0.1:{sims['primary'].port}" + ("/v1" if wire == "openai" else "")
    primary: dict[str, Any] = {"type": wire, "base_url": url, "api_key": "key-primary"}
    if wire == "bedrock":
        primary["region"] = "eu-west-1"
    backup = {"type": "openai", "base_url": sims["backup"].base_url, "api_key": "key-backup"}
    return {"providers": {"primary": primary, "backup": backup}, "routes": {"chat": ["primary/m", "backup/b"]}}


@pytest.mark.parametrize("wire", WIRES)
async def test_a_200_without_an_answer_fails_over(sdk: Sdk, sims: Sims, wire: str) -> None:
    log = AttemptLog()
    async with running_gateway(broken_then_healthy(sims, wire), observers=[log]) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
    completion = raw.parse()
    assert raw.headers["x-sidestep-provider"] == "backup"
    assert "Echo from backup" in (completion.choices[0].message.content or "")
    assert len(sims["primary"].sim.received) == 1
    provider, status, reason = log.seen[0]
    assert (provider, status) == ("primary", 502)
    assert "answered 200 without an answer" in reason


async def test_an_anthropic_client_is_not_handed_an_error_body_as_a_message(claude: Any, sims: Sims) -> None:
    async with running_gateway(broken_then_healthy(sims, "anthropic")) as gw:
        message = await claude(gw.url).messages.create(model="chat", max_tokens=100, messages=MSG)
    assert message.type == "message"
    assert "Echo from backup" in message.content[0].text
