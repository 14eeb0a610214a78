"""Azure OpenAI with Microsoft Entra ID instead of an `api-key`: a static token (`ad_token`), or the
client-credentials flow (`tenant_id`, `client_id`, `client_secret`) against
`{authority}/{tenant_id}/oauth2/v2.0/token` for the `https://cognitiveservices.azure.com/.default` scope.
Tokens are cached until five minutes before they expire and refreshed single-flight (`TokenCache`).

`openai_family` is the registry's factory for OpenAI-format providers: the Entra variant when those
settings are present, the plain adapter otherwise.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

import msgspec

from sidestep.config.model import KeyConfig, ProviderConfig
from sidestep.errors import ConfigError, UpstreamError
from sidestep.formats.base import Converses
from sidestep.providers.catalog import ProviderSpec
from sidestep.providers.openai_compat import OpenAICompatProvider
from sidestep.providers.tokens import TokenCache
from sidestep.routing.provider import Provider
from sidestep.transport.body import read_all
from sidestep.transport.types import Timeouts, UpstreamRequest

__all__ = ["AzureEntraProvider", "openai_family"]

SCOPE = "https://cognitiveservices.azure.com/.default"
AUTHORITY = "https://login.microsoftonline.com"
_FLOW = ("tenant_id", "client_id", "client_secret")
_NO_KEY = KeyConfig(None)


def openai_family(config: ProviderConfig, spec: ProviderSpec) -> Provider:
    entra = config.secret_setting("ad_token") is not None or any(config.setting(name) for name in _FLOW)
    if entra:
        return AzureEntraProvider(config, spec)
    if not any(k.secret is not None for k in config.keys) and "ad_token" in spec.settings:
        reason = (
            "no credentials: set `api_key` / `keys`, "
            "or Entra ID (`tenant_id` + `client_id` + `client_secret`, or `ad_token`)"
        )
        raise ConfigError(reason, path=f"providers.{config.name}")
    return OpenAICompatProvider(config, spec)


class AzureEntraProvider(OpenAICompatProvider):
    """Azure OpenAI authorised by an Entra ID bearer token instead of an `api-key` header."""

    def __init__(self, config: ProviderConfig, spec: ProviderSpec) -> None:
        super().__init__(config, spec)
        where = f"providers.{config.name}"
        static = config.secret_setting("ad_token")
        missing = [name for name in _FLOW if not config.setting(name)]
        if static is None and missing:
            raise ConfigError(
                f"Entra ID needs {', '.join(missing)} (or a static `ad_token`)", path=f"{where}.{missing[0]}"
            )
        authority = (config.setting("authority") or AUTHORITY).rstrip("/")
        self._token_url = f"{authority}/{config.setting('tenant_id')}/oauth2/v2.0/token"
        self._static = static.reveal() if static is not None else None
        self.tokens = TokenCache(self._fetch, f"{config.name} (Entra ID)")

    async def authorize(self, key: KeyConfig) -> None:
        if self._static is None:
            await self.tokens.get()

    def build(
        self, operation: str, model: str, body: dict[str, Any], key: KeyConfig, source: Converses | None
    ) -> UpstreamRequest:
        request = super().build(operation, model, body, _NO_KEY, source)  # no api-key header
        request.headers.append(("authorization", f"Bearer {self._static or self.tokens.token}"))
        return request

    async def _fetch(self) -> tuple[str, float]:
        from sidestep.transport.client import HttpClient  # a short-lived client: one fetch an hour

        form = {
            "grant_type": "client_credentials",
            "client_id": self.config.setting("client_id") or "",
            "client_secret": self.config.setting("client_secret") or "",
            "scope": SCOPE,
        }
        headers = [("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")]
        request = UpstreamRequest(
            "POST", self._token_url, headers, urllib.parse.urlencode(form).encode(), Timeouts(10.0, 30.0, 30.0)
        )
        client = HttpClient()
        try:
            response = await client.send(request)
            body = await read_all(response)
        finally:
            await client.aclose()
        return _token(response.status, body, self.name)


def _token(status: int, body: bytes, name: str) -> tuple[str, float]:
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        data = {}
    if status != 200 or not isinstance(data, dict) or not data.get("access_token"):
        detail = data.get("error_description") or data.get("error") if isinstance(data, dict) else None
        raise UpstreamError(
            f"{name}: Entra ID token request failed (HTTP {status}): {detail or 'no token'}", status=502
        )
    return str(data["access_token"]), time.time() + float(data.get("expires_in") or 3600)
