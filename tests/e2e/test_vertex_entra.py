"""OAuth-authorised providers over real HTTP: Gemini on Vertex AI with a service account (google-auth signs
the JWT; the simulator plays Google's token endpoint) and Azure OpenAI with Entra ID (client credentials or a
static token). Tokens are fetched once, reused, refreshed near expiry, and a failing token endpoint fails
the attempt over to the next target."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sidestep.config.load import parse_config
from sidestep.errors import ConfigError
from sidestep.providers.tokens import TokenCache
from sidestep.testing import RunningSim, running_gateway
from tests.conftest import Sdk
from tests.sim_helpers import MSG, TOOL

Sims = dict[str, RunningSim]


@pytest.fixture(scope="module")
def private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode()


def service_account(tmp_path: Path, private_key: str, token_port: int) -> Path:
    path = tmp_path / "sa.json"
    account = {
        "type": "service_account",
        "project_id": "sidestep-test",
        "private_key_id": "k1",
        "private_key": private_key,
        "client_email": "gateway@sidestep-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": f"http://127.0.0.1:{token_port}/token",
    }
    path.write_text(json.dumps(account))
    return path


def vertex_config(sims: Sims, credentials: Path, route: list[str]) -> dict[str, Any]:
    vertex = {"type": "vertex", "base_url": f"http://127.0.0.1:{sims['third'].port}", "location": "europe-west4"}
    providers = {
        "vertex": {**vertex, "credentials": str(credentials)},
        "primary": {"type": "openai", "base_url": sims["primary"].base_url, "api_key": "key-primary"},
    }
    return {"providers": providers, "routes": {"chat": route}}


async def test_vertex_with_a_service_account(
    sdk: Sdk, claude: Any, sims: Sims, tmp_path: Path, private_key: str
) -> None:
    credentials = service_account(tmp_path, private_key, sims["backup"].port)
    async with running_gateway(vertex_config(sims, credentials, ["vertex/gemini-2.5-flash"])) as gw:
        completion = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, tools=[TOOL])
        stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        message = await claude(gw.url).messages.create(model="chat", max_tokens=100, messages=MSG)
    assert completion.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[index]
    assert "Echo from third" in streamed and "Echo from third" in message.content[0].text  # type: ignore[union-attr]
    token_requests = [r for r in sims["backup"].sim.received if r.path == "/token"]
    assert len(token_requests) == 1  # fetched once, reused by all three requests
    sent = sims["third"].sim.received
    assert sent[0].path == (
        "/v1/projects/sidestep-test/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
    )
    assert sent[1].path.endswith(":streamGenerateContent") and sent[1].query == "alt=sse"
    assert {r.headers["authorization"] for r in sent} == {"Bearer ya29.sim-1-gateway"}


async def test_vertex_refreshes_a_token_near_expiry(sdk: Sdk, sims: Sims, tmp_path: Path, private_key: str) -> None:
    sims["backup"].sim.token_lifetime = 120  # inside the 5-minute margin: every request refreshes
    credentials = service_account(tmp_path, private_key, sims["backup"].port)
    async with running_gateway(vertex_config(sims, credentials, ["vertex/gemini-2.5-flash"])) as gw:
        for _ in range(3):
            await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG)
    used = [r.headers["authorization"] for r in sims["third"].sim.received]
    assert used == [f"Bearer ya29.sim-{n}-gateway" for n in (1, 2, 3)]  # a new token for each request
    assert sims["backup"].sim.tokens_issued == 3


async def test_a_failing_token_endpoint_fails_over(sdk: Sdk, sims: Sims, tmp_path: Path, private_key: str) -> None:
    sims["backup"].sim.set_fault("status=503")
    credentials = service_account(tmp_path, private_key, sims["backup"].port)
    route = ["vertex/gemini-2.5-flash", "primary/gpt-4o-mini"]
    async with running_gateway(vertex_config(sims, credentials, route)) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
    assert raw.headers["x-sidestep-provider"] == "primary" and raw.headers["x-sidestep-attempts"] == "2"
    assert sims["third"].sim.received == []  # no request went to Vertex without a token


def test_vertex_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"providers\.v\.credentials: cannot read the service-account file"):
        parse_config(
            {"providers": {"v": {"type": "vertex", "project": "p", "credentials": str(tmp_path / "no.json")}}}, env={}
        )
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "service_account"}')
    with pytest.raises(ConfigError, match=r"providers\.v\.credentials"):
        parse_config({"providers": {"v": {"type": "vertex", "project": "p", "credentials": str(bad)}}}, env={})


def azure_config(sims: Sims, route: list[str], **entra: str) -> dict[str, Any]:
    azure = {"type": "azure", "base_url": f"http://127.0.0.1:{sims['third'].port}", **entra}
    providers = {"az": azure, "primary": {"type": "openai", "base_url": sims["primary"].base_url, "api_key": "k"}}
    return {"providers": providers, "routes": {"chat": route}}


async def test_azure_with_entra_client_credentials(sdk: Sdk, sims: Sims) -> None:
    sims["backup"].sim.api_keys = frozenset({"app-id:app-secret"})
    entra = {"tenant_id": "contoso", "client_id": "app-id", "client_secret": "app-secret"}
    entra["authority"] = f"http://127.0.0.1:{sims['backup'].port}"
    async with running_gateway(azure_config(sims, ["az/gpt-4o-deployment"], **entra)) as gw:
        for _ in range(2):
            await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG)
    token_calls = [r for r in sims["backup"].sim.received if r.path == "/contoso/oauth2/v2.0/token"]
    assert len(token_calls) == 1
    sent = sims["third"].sim.received
    assert sent[0].path == "/openai/deployments/gpt-4o-deployment/chat/completions"
    assert {r.headers.get("authorization") for r in sent} == {"Bearer eyJ0eXAiOiJKV1Qi.sim-1"}
    assert all("api-key" not in r.headers for r in sent)


async def test_azure_entra_wrong_secret_fails_over_and_static_token_works(sdk: Sdk, sims: Sims) -> None:
    sims["backup"].sim.api_keys = frozenset({"app-id:app-secret"})
    entra = {
        "tenant_id": "t",
        "client_id": "app-id",
        "client_secret": "wrong",
        "authority": f"http://127.0.0.1:{sims['backup'].port}",
    }
    async with running_gateway(azure_config(sims, ["az/dep", "primary/gpt-4o-mini"], **entra)) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
    assert raw.headers["x-sidestep-provider"] == "primary"
    async with running_gateway(azure_config(sims, ["az/dep"], ad_token="static-entra-token")) as gw:
        await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG)
    assert sims["third"].sim.received[-1].headers["authorization"] == "Bearer static-entra-token"


def test_azure_needs_a_key_or_entra() -> None:
    with pytest.raises(ConfigError, match=r"providers\.az: no credentials"):
        parse_config({"providers": {"az": {"type": "azure", "base_url": "https://x.openai.azure.com"}}}, env={})
    with pytest.raises(ConfigError, match=r"providers\.az\.client_id: Entra ID needs client_id, client_secret"):
        parse_config({"providers": {"az": {"type": "azure", "base_url": "https://x", "tenant_id": "t"}}}, env={})


async def test_token_cache_refreshes_once_for_concurrent_requests() -> None:
    calls = 0
    gate = asyncio.Event()
    now = [0.0]

    async def fetch() -> tuple[str, float]:
        nonlocal calls
        calls += 1
        await gate.wait()
        return f"t{calls}", 10_000.0

    cache = TokenCache(fetch, "test", clock=lambda: now[0])
    waiting = [asyncio.create_task(cache.get()) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == ["t1"] * 5 and calls == 1
    now[0] = 9_800.0  # within five minutes of expiry: the next request refreshes
    assert await cache.get() == "t2" and calls == 2
