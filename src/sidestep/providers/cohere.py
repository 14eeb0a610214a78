"""The adapter for Cohere's Chat v2 API (`POST /v2/chat`), reached from either client dialect through the
canonical model. 429 and 5xx fail over; "too many tokens" is a context-window error."""

from __future__ import annotations

from typing import Any

from sidestep.config.model import KeyConfig, ProviderConfig
from sidestep.core.model import Usage
from sidestep.dialects import cohere as wire
from sidestep.providers.base import NativeAdapter
from sidestep.providers.catalog import ProviderSpec
from sidestep.translate import DIALECT_OF, to_canonical
from sidestep.transport.types import UpstreamRequest

__all__ = ["CohereProvider"]


class CohereProvider(NativeAdapter):
    wire = "cohere"

    def __init__(self, config: ProviderConfig, spec: ProviderSpec) -> None:
        super().__init__(config, spec)
        self._static_headers = [("content-type", "application/json"), ("accept-encoding", "identity"), *config.headers]
        base = config.base_url.removesuffix("/v2")
        self._url = base + "/v2/chat"

    def build(self, operation: str, model: str, body: dict[str, Any], key: KeyConfig) -> UpstreamRequest:
        request = to_canonical(DIALECT_OF[operation], body)
        request.model = model
        headers = list(self._static_headers)
        if key.secret is not None:
            headers.append(("authorization", f"Bearer {key.secret.reveal()}"))
        if request.stream:
            headers.append(("accept", "text/event-stream"))
        return UpstreamRequest("POST", self._url, headers, self._encode(wire.write_request(request)), self._timeouts)

    def inspect(self, operation: str, body: bytes) -> Usage:
        return wire.usage_of(self._object(body, operation, "message").get("usage"))
