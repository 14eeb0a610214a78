"""The adapter for Anthropic's Messages API.

Anthropic-format clients pass through (the body goes upstream with the model rewritten); OpenAI-format
requests are translated through the canonical model. `overloaded_error` (529) is retryable; "prompt is
too long" is a context-window error with its own fallbacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from sidestep.config.model import KeyConfig, ProviderConfig
from sidestep.errors import UpstreamError
from sidestep.formats.anthropic_messages import ANTHROPIC_MESSAGES
from sidestep.formats.base import Converses
from sidestep.formats.translate import translate_request
from sidestep.providers.base import classify_http_error, no_answer, not_relayed
from sidestep.providers.catalog import ProviderSpec
from sidestep.transport.types import Timeouts, UpstreamRequest

__all__ = ["AnthropicProvider"]

_PATHS = {
    "messages": "/messages",
    "chat": "/messages",
    "count_tokens": "/messages/count_tokens",
    "responses": "/messages",
    "converse": "/messages",  # translated: a Bedrock (boto3) client
}
GATEWAY_FIELDS = ("fallbacks", "models", "route")
_COUNTED = ("messages", "system", "tools", "tool_choice", "thinking")


class _Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def input(self) -> int:
        return self.input_tokens

    @property
    def output(self) -> int:
        return self.output_tokens


class _Envelope(msgspec.Struct):
    usage: _Usage | None = None
    type: str = ""  # "message" for an answer; a 200 `{"type": "error", …}` is none


class AnthropicProvider:
    format = ANTHROPIC_MESSAGES

    def __init__(self, config: ProviderConfig, spec: ProviderSpec) -> None:
        self.name = config.name
        self.config = config
        self.spec = spec
        self._encode = msgspec.json.Encoder().encode
        self._envelope = msgspec.json.Decoder(_Envelope).decode
        version = config.api_version or spec.default_api_version or "2023-06-01"
        self._static_headers = [
            ("content-type", "application/json"),
            ("accept-encoding", "identity"),
            ("anthropic-version", version),
            *config.headers,
        ]
        base = config.base_url
        root = base if base.endswith("/v1") else base + "/v1"
        self._urls = {op: root + path for op, path in _PATHS.items()}
        stages = config.timeouts
        self._timeouts = Timeouts(connect=stages.connect, headers=stages.headers, read=stages.idle)

    def supports(self, operation: str) -> bool:
        return operation in _PATHS

    def build(
        self, operation: str, model: str, body: dict[str, Any], key: KeyConfig, source: Converses | None
    ) -> UpstreamRequest:
        if source is None:
            raise not_relayed(self.name, operation)
        if source is ANTHROPIC_MESSAGES:
            payload = {k: v for k, v in body.items() if k not in GATEWAY_FIELDS}
        else:
            payload = translate_request(body, source, ANTHROPIC_MESSAGES)
            if operation == "count_tokens":  # another format's count: only the fields count_tokens takes
                payload = {k: v for k, v in payload.items() if k in _COUNTED}
        payload["model"] = model
        headers = list(self._static_headers)
        if payload.get("stream"):
            headers.append(("accept", "text/event-stream"))
        if key.secret is not None:
            headers.append(("x-api-key", key.secret.reveal()))
        return UpstreamRequest("POST", self._urls[operation], headers, self._encode(payload), self._timeouts)

    def inspect(self, operation: str, body: bytes) -> _Usage | None:
        try:
            envelope = self._envelope(body)
        except msgspec.DecodeError as exc:
            raise UpstreamError(f"{self.name} returned a malformed {operation} body: {exc}", status=502) from exc
        if envelope.type != "message" and operation != "count_tokens":
            raise no_answer(self.name, body, '`"type": "message"`')
        return envelope.usage

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        error = classify_http_error(status, headers, body, provider=self.name)
        if not error.retryable and b'"overloaded_error"' in body[:300]:  # overloaded is never the caller's fault
            error.retryable = True
        return error
