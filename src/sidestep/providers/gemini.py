"""The adapter for Google Gemini (AI Studio `generateContent`), reached from either client format through
the canonical model. A prompt Gemini blocks (`promptFeedback.blockReason`, HTTP 200 with no candidates) is
a content-policy error, with its own fallbacks; 429 RESOURCE_EXHAUSTED and 5xx fail over.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sidestep.config.model import KeyConfig, ProviderConfig
from sidestep.core.model import Usage
from sidestep.errors import UpstreamError
from sidestep.formats import gemini as wire
from sidestep.formats.base import ClientFormat
from sidestep.formats.gemini import GEMINI
from sidestep.formats.translate import to_canonical
from sidestep.providers.base import NativeAdapter, no_answer
from sidestep.providers.catalog import ProviderSpec
from sidestep.transport.types import UpstreamRequest

__all__ = ["GeminiProvider"]


class GeminiProvider(NativeAdapter):
    format = GEMINI

    def __init__(self, config: ProviderConfig, spec: ProviderSpec) -> None:
        super().__init__(config, spec)
        self._static_headers = [("content-type", "application/json"), ("accept-encoding", "identity"), *config.headers]
        base = config.base_url
        self._root = base if base.endswith(("/v1beta", "/v1")) else base + "/v1beta"

    def build(
        self, operation: str, model: str, body: dict[str, Any], key: KeyConfig, source: ClientFormat
    ) -> UpstreamRequest:
        request = to_canonical(source, body)
        payload = self.format.write_request(request)
        headers = list(self._static_headers)
        if key.secret is not None:
            headers.append(("x-goog-api-key", key.secret.reveal()))
        segment = quote(model, safe="")  # one path segment, whatever the client wrote ('/', '?', '#' …)
        if request.stream:
            headers.append(("accept", "text/event-stream"))
            url = f"{self._root}/models/{segment}:streamGenerateContent?alt=sse"
        else:
            url = f"{self._root}/models/{segment}:generateContent"
        return UpstreamRequest("POST", url, headers, self._encode(payload), self._timeouts)

    def inspect(self, operation: str, body: bytes) -> Usage:
        data = self._object(body, operation, "")
        blocked = wire.blocked_reason(data)
        if blocked is not None:
            message = f"{self.name} blocked the prompt: {blocked}"
            raise UpstreamError(message, status=400, body=body, retryable=False, kind="content_policy")
        if not isinstance(data.get("candidates"), list):  # `{"error": …}`, or nothing: not an empty answer
            raise no_answer(self.name, body, "`candidates`")
        return self.format.read_response(body).usage
