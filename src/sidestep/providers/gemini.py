"""The adapter for Google Gemini (AI Studio `generateContent`, `countTokens`, `embedContent`,
`batchEmbedContents`). A Gemini client's body passes through (less what only the gateway reads); other
client formats are translated through the canonical model. A prompt Gemini blocks (`promptFeedback.blockReason`,
HTTP 200 with no candidates) is a content-policy error, with its own fallbacks; 429 RESOURCE_EXHAUSTED and
5xx fail over.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sidestep.config.model import KeyConfig, ProviderConfig
from sidestep.core.model import Usage
from sidestep.errors import BadRequest, UpstreamError
from sidestep.formats import gemini as wire
from sidestep.formats.base import Converses, ReadsEmbeddingInputs
from sidestep.formats.body import field
from sidestep.formats.gemini import GEMINI, GEMINI_BODIES
from sidestep.formats.translate import to_canonical
from sidestep.providers.base import NativeAdapter, no_answer, not_relayed
from sidestep.providers.catalog import ProviderSpec
from sidestep.transport.types import UpstreamRequest

__all__ = ["GeminiProvider"]


_GATEWAY_FIELDS = ("stream", "model", "fallbacks", "models", "route", "messages")  # read by the gateway, never sent


class GeminiProvider(NativeAdapter):
    format = GEMINI
    operations = NativeAdapter.operations | {"count_tokens", "embeddings"}

    def __init__(self, config: ProviderConfig, spec: ProviderSpec) -> None:
        super().__init__(config, spec)
        self._static_headers = [("content-type", "application/json"), ("accept-encoding", "identity"), *config.headers]
        base = config.base_url
        self._root = base if base.endswith(("/v1beta", "/v1")) else base + "/v1beta"

    def build(
        self, operation: str, model: str, body: dict[str, Any], key: KeyConfig, source: Converses | None
    ) -> UpstreamRequest:
        if source is None:
            raise not_relayed(self.name, operation)
        stream = False
        if operation == "embeddings":
            payload, method = _embeddings(body, model, source)
        elif source in GEMINI_BODIES:  # a Gemini body (SSE or array stream): as it came, with the target's model
            payload = {k: v for k, v in body.items() if k not in _GATEWAY_FIELDS}
            stream = body.get("stream") is True
            if "messages" in body:  # a continuation (`mid_stream: continue`): its turns as Gemini's
                payload["contents"] = [*field(body, "contents"), *_turns(field(body, "messages"))]
            inner = field(payload, "generateContentRequest") if operation == "count_tokens" else None
            if isinstance(inner, dict):
                payload["generateContentRequest"] = {**inner, "model": f"models/{model}"}
        else:
            request = to_canonical(source, body)
            payload, stream = self.format.write_request(request), request.stream
            if operation == "count_tokens":
                payload, stream = {"generateContentRequest": {"model": f"models/{model}", **payload}}, False
        if operation != "embeddings":
            method = "countTokens" if operation == "count_tokens" else "generateContent"
        headers = list(self._static_headers)
        if key.secret is not None:
            headers.append(("x-goog-api-key", key.secret.reveal()))
        segment = quote(model, safe="")  # one path segment, whatever the client wrote ('/', '?', '#' …)
        if stream:
            headers.append(("accept", "text/event-stream"))
            url = f"{self._root}/models/{segment}:streamGenerateContent?alt=sse"
        else:
            url = f"{self._root}/models/{segment}:{method}"
        return UpstreamRequest("POST", url, headers, self._encode(payload), self._timeouts)

    def inspect(self, operation: str, body: bytes) -> Usage:
        if operation == "count_tokens":
            self._object(body, operation, "")
            return Usage()
        if operation == "embeddings":
            data = self._object(body, operation, "")
            if not isinstance(data.get("embedding") or data.get("embeddings"), dict | list):
                raise no_answer(self.name, body, "`embedding`")
            return Usage()
        data = self._object(body, operation, "")
        blocked = wire.blocked_reason(data)
        if blocked is not None:
            message = f"{self.name} blocked the prompt: {blocked}"
            raise UpstreamError(message, status=400, body=body, retryable=False, kind="content_policy")
        if not isinstance(data.get("candidates"), list):  # `{"error": …}`, or nothing: not an empty answer
            raise no_answer(self.name, body, "`candidates`")
        return self.format.read_response(body).usage


def _embeddings(body: dict[str, Any], model: str, source: Converses) -> tuple[dict[str, Any], str]:
    """An embeddings request as Gemini's: a Gemini client's own (each batch request naming the target's
    model), or another format's texts as one `batchEmbedContents`."""
    name = f"models/{model}"
    if source is GEMINI:
        payload = {k: v for k, v in body.items() if k not in _GATEWAY_FIELDS}
        if "requests" not in payload:
            return payload, "embedContent"
        payload["requests"] = [{**r, "model": name} for r in field(payload, "requests")]
        return payload, "batchEmbedContents"
    if not isinstance(source, ReadsEmbeddingInputs):
        raise BadRequest(f"{source.name} embeddings cannot be served by a Gemini target.")
    texts, dims = source.embedding_request(body)
    extra = {"outputDimensionality": dims} if dims is not None else {}
    requests = [{"model": name, "content": {"parts": [{"text": text}]}, **extra} for text in texts]
    return {"requests": requests}, "batchEmbedContents"


def _turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"role": "model" if m.get("role") == "assistant" else "user", "parts": [{"text": str(m.get("content", ""))}]}
        for m in messages
    ]
