"""`GET /v1/models` and `GET /v1/models/{id}` with both official SDKs: OpenAI's `client.models.retrieve` for a
route, a listed `provider/model` and a route's target; Anthropic's `client.models.list()` (paged as the SDK pages)
and `.retrieve()` in Anthropic's shape (an Anthropic client is one that sends `anthropic-version`); 404s in the
asking SDK's error shape; a virtual key's model allow-list narrows both; hostile ids and paging parameters."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic.types import ModelInfo
from openai.types import Model

from sidestep.testing import RunningSim, config_for, running_gateway
from tests.conftest import Sdk

Sims = dict[str, RunningSim]


def models_config(sims: Sims) -> dict[str, Any]:
    config = config_for(sims, {"chat": ["primary/gpt-4o", "backup/m"], "fast": ["backup/m"], "smart": ["third/x"]})
    config["providers"]["primary"]["models"] = ["gpt-4o-mini"]
    return config


async def test_openai_retrieve_routes_listed_models_and_targets(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(models_config(sims)) as gw:
        client = sdk(gw.base_url)
        route = await client.models.retrieve("chat")
        listed = await client.models.retrieve("primary/gpt-4o-mini")
        target = await client.models.retrieve("primary/gpt-4o")
        raw = await client.models.with_raw_response.retrieve("fast")
        listing = [model.id async for model in client.models.list()]
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve("primary/never-configured")
    assert (route.id, route.object, route.owned_by) == ("chat", "model", "sidestep-route")
    assert (listed.id, listed.owned_by) == ("primary/gpt-4o-mini", "primary")
    assert (target.id, target.owned_by) == ("primary/gpt-4o", "primary")
    Model.model_validate_json(raw.content)
    assert listing == ["chat", "fast", "smart", "primary/gpt-4o-mini"]
    error = missing.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found" and error["type"] == "invalid_request_error"
    assert all(sim.sim.received == [] for sim in sims.values())  # answered by the gateway itself


async def test_anthropic_list_and_retrieve(claude: Any, sims: Sims) -> None:
    async with running_gateway(models_config(sims)) as gw:
        client = claude(gw.url)
        everything = [model async for model in client.models.list()]
        paged = [model.id async for model in client.models.list(limit=1)]  # the SDK follows `last_id`
        first = await client.models.list(limit=2)
        route = await client.models.retrieve("smart")
        slashed = await client.models.retrieve("primary/gpt-4o-mini")
        with pytest.raises(anthropic.NotFoundError) as missing:
            await client.models.retrieve("nope")
        with pytest.raises(anthropic.BadRequestError) as bad_limit:
            await client.models.list(limit=5000)
    assert [m.id for m in everything] == ["chat", "fast", "smart", "primary/gpt-4o-mini"]
    assert all(isinstance(m, ModelInfo) and m.type == "model" and m.display_name == m.id for m in everything)
    assert paged == [m.id for m in everything]
    assert [m.id for m in first.data] == ["chat", "fast"] and first.has_more and first.last_id == "fast"
    assert (route.id, route.type) == ("smart", "model") and slashed.id == "primary/gpt-4o-mini"
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert bad_limit.value.body["type"] == "error" and "limit" in bad_limit.value.message  # type: ignore[index]


async def test_before_id_pages_backwards(sims: Sims) -> None:
    async with running_gateway(models_config(sims)) as gw, httpx.AsyncClient() as http:
        page = await http.get(
            f"{gw.url}/v1/models?before_id=smart&limit=1", headers={"anthropic-version": "2023-06-01"}
        )
    body = page.json()
    assert [m["id"] for m in body["data"]] == ["fast"] and body["has_more"] and body["first_id"] == "fast"


async def test_a_keys_allow_list_narrows_list_and_retrieve(claude: Any, sims: Sims) -> None:
    config = models_config(sims)
    config["governance"] = {"keys": {"alice": {"key": "sk-alice", "models": ["chat", "primary/*"]}}}
    async with running_gateway(config) as gw:
        async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="sk-alice", max_retries=0) as alice:
            allowed = await alice.models.retrieve("chat")
            listed = [model.id async for model in alice.models.list()]
            with pytest.raises(openai.NotFoundError):
                await alice.models.retrieve("fast")  # exists, but not for this key: not even its existence
        bob = anthropic.AsyncAnthropic(base_url=gw.url, api_key="sk-alice", max_retries=0)
        names = [model.id async for model in bob.models.list()]
        with pytest.raises(anthropic.NotFoundError):
            await bob.models.retrieve("smart")
        await bob.close()
    assert allowed.id == "chat" and listed == names == ["chat", "primary/gpt-4o-mini"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/models/%0d%0ax-injected:%201", 404),
        ("/v1/models/" + "a" * 5000, 404),
        ("/v1/models/..%2F..%2Fetc%2Fpasswd", 404),
        ("/models/%00", 404),
    ],
)
async def test_hostile_ids_are_404s_in_openai_shape(sims: Sims, path: str, status: int) -> None:
    async with running_gateway(models_config(sims)) as gw, httpx.AsyncClient() as http:
        answer = await http.get(gw.url + path)
    assert answer.status_code == status and "x-injected" not in answer.headers
    error = answer.json()["error"]
    assert error["code"] == "model_not_found" and len(error["message"]) < 400


async def test_wrong_method_and_bad_paging(sims: Sims) -> None:
    anthropic_head = {"anthropic-version": "2023-06-01"}
    async with running_gateway(models_config(sims)) as gw, httpx.AsyncClient() as http:
        posted = await http.post(f"{gw.url}/v1/models/chat", json={})
        letters = await http.get(f"{gw.url}/v1/models?limit=abc", headers=anthropic_head)
        crowded = await http.get(
            f"{gw.url}/v1/models?" + "&".join(f"a{i}=1" for i in range(50)), headers=anthropic_head
        )
        unknown_after = await http.get(f"{gw.url}/v1/models?after_id=nope", headers=anthropic_head)
    assert posted.status_code == 405 and "GET" in posted.json()["error"]["message"]
    assert letters.status_code == 400 and letters.json()["error"]["type"] == "invalid_request_error"
    assert crowded.status_code == 400 and crowded.json()["type"] == "error"
    assert unknown_after.json() == {"data": [], "has_more": False, "first_id": None, "last_id": None}
