"""The adapter for Google Gemini (AI Studio `generateContent`), reached from either client dialect through
the canonical model. A prompt Gemini blocks (`promptFeedback.blockReason`, HTTP 200 with no candidates) is
a content-policy error, with its own fallbacks; 429 RESOURCE_EXHAUSTED and 5xx fail over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from sidestep.config.model import KeyConfig, ProviderConfig
from sidestep.core.model import Usage
from sidestep.dialects import gemini as wire
from sidestep.errors import UpstreamError
from sidestep.providers.base import classify_http_error
from sidestep.providers.catalog import ProviderSpec
from sidestep.translate import DIALECT_OF, to_canonical
from sidestep.transport.types import Timeouts, UpstreamRequest

__all__ = ["GeminiProvider"]

_OPERATIONS = frozenset({"chat", "messages"})


class GeminiProvider:
    wire = "gemini"

    def __init__(self, config: ProviderConfig, spec: ProviderSpec) -> None:
        self.name = config.name
        self.config = config
        self.spec = spec
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder().decode
        self._static_headers = [("content-type", "application/json"), ("accept-encoding", "identity"), *config.headers]
        base = config.base_url
        self._root = base if base.endswith(("/v1beta", "/v1")) else base + "/v1beta"
        stages = config.timeouts
        self._timeouts = Timeouts(connect=stages.connect, headers=stages.headers, read=stages.idle)

    def supports(self, operation: str) -> bool:
        return operation in _OPERATIONS

    def build(self, operation: str, model: str, body: dict[str, Any], key: KeyConfig) -> UpstreamRequest:
        request = to_canonical(DIALECT_OF[operation], body)
        payload = wire.write_request(request)
        headers = list(self._static_headers)
        if key.secret is not None:
            headers.append(("x-goog-api-key", key.secret.reveal()))
        if request.stream:
            headers.append(("accept", "text/event-stream"))
            url = f"{self._root}/models/{model}:streamGenerateContent?alt=sse"
        else:
            url = f"{self._root}/models/{model}:generateContent"
        return UpstreamRequest("POST", url, headers, self._encode(payload), self._timeouts)

    def inspect(self, operation: str, body: bytes) -> Usage:
        try:
            data = self._decode(body)
            if not isinstance(data, dict):
                raise TypeError("not an object")
        except (msgspec.DecodeError, TypeError) as exc:
            raise UpstreamError(f"{self.name} returned a malformed {operation} body: {exc}", status=502) from exc
        blocked = wire.blocked_reason(data)
        if blocked is not None:
            message = f"{self.name} blocked the prompt: {blocked}"
            raise UpstreamError(message, status=400, body=body, retryable=False, kind="content_policy")
        return wire.read_response(body).usage

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return classify_http_error(status, headers, body, provider=self.name)
