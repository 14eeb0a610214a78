"""The adapter for Cohere's Chat v2 API (`POST /v2/chat`), reached from either client dialect through the
canonical model. 429 and 5xx fail over; "too many tokens" is a context-window error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from sidestep.config.model import KeyConfig, ProviderConfig
from sidestep.core.model import Usage
from sidestep.dialects import cohere as wire
from sidestep.errors import UpstreamError
from sidestep.providers.base import classify_http_error
from sidestep.providers.catalog import ProviderSpec
from sidestep.translate import DIALECT_OF, to_canonical
from sidestep.transport.types import Timeouts, UpstreamRequest

__all__ = ["CohereProvider"]

_OPERATIONS = frozenset({"chat", "messages"})


class CohereProvider:
    wire = "cohere"

    def __init__(self, config: ProviderConfig, spec: ProviderSpec) -> None:
        self.name = config.name
        self.config = config
        self.spec = spec
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder().decode
        self._static_headers = [("content-type", "application/json"), ("accept-encoding", "identity"), *config.headers]
        base = config.base_url.removesuffix("/v2")
        self._url = base + "/v2/chat"
        stages = config.timeouts
        self._timeouts = Timeouts(connect=stages.connect, headers=stages.headers, read=stages.idle)

    def supports(self, operation: str) -> bool:
        return operation in _OPERATIONS

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
        try:
            data = self._decode(body)
            if not isinstance(data, dict) or "message" not in data:
                raise TypeError("no message")
        except (msgspec.DecodeError, TypeError) as exc:
            raise UpstreamError(f"{self.name} returned a malformed {operation} body: {exc}", status=502) from exc
        return wire.usage_of(data.get("usage"))

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return classify_http_error(status, headers, body, provider=self.name)
