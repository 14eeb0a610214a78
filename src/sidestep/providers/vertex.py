"""The adapter for Gemini models on Google Vertex AI: Gemini's wire format (`sidestep.formats.gemini`) at
regional `…/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent`
URLs, authorised by an OAuth access token from a service-account file or Application Default Credentials.

Credentials come from google-auth (`sidestep[vertex]`), imported when a vertex provider is configured.
Its token refresh is blocking, so it runs in a thread, once an hour or so, single-flight (`TokenCache`).
"""

from __future__ import annotations

import asyncio
import datetime
import os
from typing import Any

from sidestep.config.model import KeyConfig, ProviderConfig
from sidestep.errors import ConfigError
from sidestep.formats.base import Converses
from sidestep.providers.catalog import ProviderSpec
from sidestep.providers.gemini import GeminiProvider
from sidestep.providers.tokens import TokenCache
from sidestep.transport.types import UpstreamRequest

__all__ = ["VertexProvider"]

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


class VertexProvider(GeminiProvider):
    # The same wire format as AI Studio (inherited); only the URL and the auth differ.

    def __init__(self, config: ProviderConfig, spec: ProviderSpec) -> None:
        super().__init__(config, spec)
        env = os.environ
        where = f"providers.{config.name}"
        self.project = config.setting("project") or env.get("GOOGLE_CLOUD_PROJECT")
        self.location = config.setting("location") or env.get("GOOGLE_CLOUD_LOCATION") or "us-central1"
        credentials = _credentials(config.setting("credentials") or env.get("GOOGLE_APPLICATION_CREDENTIALS"), where)
        self.project = self.project or getattr(credentials, "project_id", None)
        if not self.project:
            raise ConfigError(
                "no Google Cloud project: set `project:` or GOOGLE_CLOUD_PROJECT", path=f"{where}.project"
            )
        base = config.base_url
        if base == spec.base_url:  # not overridden: the regional endpoint
            host = (
                "aiplatform.googleapis.com"
                if self.location == "global"
                else f"{self.location}-aiplatform.googleapis.com"
            )
            base = f"https://{host}"
        self._root = f"{base}/v1/projects/{self.project}/locations/{self.location}/publishers/google"
        self._credentials = credentials
        self.tokens = TokenCache(self._fetch, f"{config.name} (Vertex AI)")

    async def authorize(self, key: KeyConfig) -> None:
        await self.tokens.get()

    def build(
        self, operation: str, model: str, body: dict[str, Any], key: KeyConfig, source: Converses | None
    ) -> UpstreamRequest:
        request = super().build(operation, model, body, KeyConfig(None), source)
        request.headers.append(("authorization", f"Bearer {self.tokens.token}"))
        return request

    async def _fetch(self) -> tuple[str, float]:
        return await asyncio.to_thread(_refresh, self._credentials)


def _credentials(path: str | None, where: str) -> Any:
    try:
        import google.auth
        import google.auth.exceptions
        from google.oauth2 import service_account
    except ImportError:
        raise ConfigError("vertex needs google-auth: pip install 'sidestep[vertex]'", path=f"{where}.type") from None
    try:
        if path:
            return service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                path, scopes=list(SCOPES)
            )
        credentials, _project = google.auth.default(scopes=list(SCOPES))
        return credentials
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"cannot read the service-account file '{path}': {exc}", path=f"{where}.credentials"
        ) from None
    except google.auth.exceptions.DefaultCredentialsError as exc:
        reason = f"no Google credentials: set `credentials:` (a service-account file) or ADC ({exc})"
        raise ConfigError(reason, path=f"{where}.credentials") from None


def _refresh(credentials: Any) -> tuple[str, float]:
    """Blocking: google-auth's own refresh over `requests`; returns the token and its expiry (epoch seconds)."""
    from google.auth.transport.requests import Request

    credentials.refresh(Request())
    expiry = credentials.expiry
    if expiry is None:
        return str(credentials.token), float("inf")
    return str(credentials.token), expiry.replace(tzinfo=datetime.UTC).timestamp()
