"""Capabilities: a request that needs what a target lacks skips that target, and says so."""

from __future__ import annotations

import msgspec
import openai
import pytest

from sidestep.config.load import parse_config
from sidestep.errors import ConfigError
from sidestep.formats.body import decode_body
from sidestep.formats.translate import request_needs
from sidestep.testing import RunningSim, config_for, running_gateway
from tests.conftest import Sdk

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
VISION = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}]


def test_lacks_is_parsed_per_model_glob_and_validated() -> None:
    providers = {
        "p": {"type": "openai", "api_key": "k", "lacks": {"*": ["vision"], "small-*": ["tools"]}},
        "q": {"type": "perplexity", "api_key": "k"},
    }
    config = parse_config({"providers": providers})
    assert config.providers["p"].lacks_for("small-1") == {"vision", "tools"}
    assert config.providers["p"].lacks_for("big") == {"vision"}
    # the catalog's default, and what the provider type never has (no Responses API upstream)
    assert config.providers["q"].lacks_for("sonar") == {"tools", "responses"}
    assert config.providers["p"].never == frozenset() and config.providers["q"].never == {"responses"}
    with pytest.raises(ConfigError, match=r"providers.p.lacks: unknown capability 'sight'"):
        parse_config({"providers": {"p": {"type": "openai", "api_key": "k", "lacks": ["sight"]}}})


async def test_target_lacking_a_needed_capability_is_skipped(sdk: Sdk, sims: dict[str, RunningSim]) -> None:
    config = config_for(sims, {"chat": ["primary/text-only", "backup/vision"]})
    config["providers"]["primary"]["lacks"] = {"text-*": ["vision"]}
    async with running_gateway(config) as gw:
        client = sdk(gw.base_url)
        raw = await client.chat.completions.with_raw_response.create(model="chat", messages=VISION)
        plain = await client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.headers["x-sidestep-provider"] == "backup" and raw.headers["x-sidestep-attempts"] == "2"
    assert plain.headers["x-sidestep-provider"] == "primary"  # text needs nothing it lacks
    assert len(sims["primary"].sim.received) == 1
    only = config_for(sims, {"chat": ["primary/text-only"]})
    only["providers"]["primary"]["lacks"] = ["vision"]
    async with running_gateway(only) as gw:
        with pytest.raises(openai.APIStatusError, match="lacks vision") as caught:
            await sdk(gw.base_url).chat.completions.create(model="chat", messages=VISION)
    assert caught.value.status_code == 502


async def test_models_without_embeddings_are_skipped_for_embeddings(sdk: Sdk, sims: dict[str, RunningSim]) -> None:
    config = config_for(sims, {"embed": ["primary/chat-only", "backup/text-embedding-3-small"]})
    config["providers"]["primary"]["lacks"] = {"chat-*": ["embeddings"]}
    async with running_gateway(config) as gw:
        raw = await sdk(gw.base_url).embeddings.with_raw_response.create(model="embed", input="hello")
    assert raw.headers["x-sidestep-provider"] == "backup" and sims["primary"].sim.received == []


@pytest.mark.parametrize(
    ("body", "stream", "needs"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, False, set()),
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, True, {"streaming"}),
        ({"model": "m", "messages": [{"role": "user", "content": "an image of"}], "tools": []}, False, set()),
        ({"model": "m", "messages": [], "tools": [{"type": "function"}]}, False, {"tools"}),
        ({"model": "m", "messages": [], "response_format": {"type": "json_schema"}}, False, {"json_schema"}),
        ({"model": "m", "messages": VISION}, False, {"vision"}),
    ],
)
def test_request_needs_read_from_the_raw_body(body: dict[str, object], stream: bool, needs: set[str]) -> None:
    raw = msgspec.json.encode(body)
    assert request_needs(decode_body(raw), stream, "chat", raw) == needs
    assert request_needs(decode_body(raw), stream, "chat") == needs  # the same without the raw bytes
