"""Which refusals take a provider key out of rotation, and for how long, over real HTTP on a `FakeClock`.

A refusal of the model one request asked for (not found, not allowed for this key) is that request's: it
must not rest a key every other request shares. A refusal of the key itself (invalid, revoked) is the key's.
"""

from __future__ import annotations

import openai
import pytest

from sidestep.config.load import parse_config
from sidestep.testing import FakeClock, RunningSim, config_for, running_gateway
from tests.conftest import Sdk

MSG = [{"role": "user", "content": "Which key?"}]
Sims = dict[str, RunningSim]
ROUTE = {"chat": ["primary/a", "backup/b"]}


async def served_by(sdk: Sdk, base_url: str, model: str = "chat") -> str:
    raw = await sdk(base_url).chat.completions.with_raw_response.create(model=model, messages=MSG)
    return str(raw.headers["x-sidestep-provider"])


@pytest.mark.parametrize(
    "refusal",
    [
        "status=403,message=Project `proj_1` does not have access to model `secret`",  # OpenAI, code null
        "status=404",  # OpenAI model_not_found: The model does not exist or you do not have access to it
    ],
)
async def test_a_refused_model_does_not_rest_the_key_for_everyone(sdk: Sdk, sims: Sims, refusal: str) -> None:
    clock = FakeClock()
    async with running_gateway(config_for(sims, ROUTE), clock=clock, sleep=clock.sleep) as gw:
        with pytest.raises(openai.APIStatusError):
            await sdk(gw.base_url).chat.completions.create(model=f"primary/secret@{refusal}", messages=MSG)
        after = await served_by(sdk, gw.base_url)
        resting = not gw.gateway.state.cooldowns.is_cool("primary#0", clock())
    assert after == "primary"
    assert not resting


async def test_a_rejected_key_rests_no_longer_than_configured(sdk: Sdk, sims: Sims) -> None:
    clock = FakeClock()
    resilience = {"rejected_key_cooldown": 600}
    async with running_gateway(config_for(sims, ROUTE, resilience=resilience), clock=clock, sleep=clock.sleep) as gw:
        with pytest.raises(openai.APIStatusError):  # 401 invalid_api_key: "Incorrect API key provided."
            await sdk(gw.base_url).chat.completions.create(model="primary/a@status=401", messages=MSG)
        resting = await served_by(sdk, gw.base_url)
        clock.advance(601)
        rested = await served_by(sdk, gw.base_url)
    assert (resting, rested) == ("backup", "primary")


async def test_a_retry_after_is_capped_by_max_key_cooldown(sdk: Sdk, sims: Sims) -> None:
    clock = FakeClock()
    resilience = {"max_key_cooldown": 120}
    async with running_gateway(config_for(sims, ROUTE, resilience=resilience), clock=clock, sleep=clock.sleep) as gw:
        with pytest.raises(openai.RateLimitError):  # "come back in a day"
            await sdk(gw.base_url).chat.completions.create(model="primary/a@status=429,retry_after=86400", messages=MSG)
        clock.advance(60)
        resting = await served_by(sdk, gw.base_url)
        clock.advance(61)
        rested = await served_by(sdk, gw.base_url)
    assert (resting, rested) == ("backup", "primary")


async def test_a_reload_applies_new_cooldowns_to_resting_keys(sdk: Sdk, sims: Sims) -> None:
    clock = FakeClock()
    config = config_for(sims, ROUTE)
    async with running_gateway(config, clock=clock, sleep=clock.sleep) as gw:
        with pytest.raises(openai.APIStatusError):
            await sdk(gw.base_url).chat.completions.create(model="primary/a@status=401", messages=MSG)  # rests 3600 s
        gw.gateway.reconfigure(parse_config({**config, "resilience": {"max_key_cooldown": 60}}, env={}))
        clock.advance(61)
        after = await served_by(sdk, gw.base_url)
    assert after == "primary"
