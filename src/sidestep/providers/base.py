"""What provider adapters share: the native adapters' base and the upstream-error classification.

An adapter (the seam routing awaits: `sidestep.routing.provider.Provider`) turns (operation, model, request
body, key) into an `UpstreamRequest` and turns an upstream error response into an `UpstreamError` that says
whether trying elsewhere can help.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from sidestep.config.model import ProviderConfig
from sidestep.errors import BadRequest, UpstreamError
from sidestep.providers.catalog import ProviderSpec
from sidestep.transport.types import Timeouts

__all__ = [
    "RETRYABLE_STATUSES",
    "NativeAdapter",
    "classify_http_error",
    "no_answer",
    "not_relayed",
    "parse_retry_after",
]

# 408 timeout, 409 conflict (OpenAI uses it for transient lock errors), 429 rate limit, 5xx, 529 overloaded.
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})


def not_relayed(provider: str, operation: str) -> BadRequest:
    """A relayed-only API's request (its client has no conversing side: `source` None) at an adapter that does not
    serve the operation. Routing sends one only to adapters whose `supports` has it, so this is never reached; the
    type says it may be, and the answer is a 400 rather than a translation of what cannot be read."""
    return BadRequest(f"'{operation}' requests cannot be served by {provider}: it does not relay them.")


class NativeAdapter:
    """What the canonical-model adapters (Gemini, Bedrock, Cohere, …) share: identity, JSON codecs, the
    provider's stage timeouts, chat from either client format, and the common error classification."""

    operations = frozenset({"chat", "messages", "responses", "converse"})

    def __init__(self, config: ProviderConfig, spec: ProviderSpec) -> None:
        self.name = config.name
        self.config = config
        self.spec = spec
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder().decode
        stages = config.timeouts
        self._timeouts = Timeouts(connect=stages.connect, headers=stages.headers, read=stages.idle)

    def supports(self, operation: str) -> bool:
        return operation in self.operations

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return classify_http_error(status, headers, body, provider=self.name)

    def _object(self, body: bytes, operation: str, required: str) -> dict[str, Any]:
        """A successful answer's top-level object; a malformed one is a retryable 502, and so is one whose
        `required` field (the answer) is not there as an object or array (`no_answer`)."""
        try:
            data = self._decode(body)
            if not isinstance(data, dict):
                raise TypeError("no object")
        except (msgspec.DecodeError, TypeError) as exc:
            raise UpstreamError(f"{self.name} returned a malformed {operation} body: {exc}", status=502) from exc
        if required and not isinstance(data.get(required), dict | list):
            raise no_answer(self.name, body, f"`{required}`")
        return data


def no_answer(provider: str, body: bytes, missing: str) -> UpstreamError:
    """A 200 whose body carries no answer — an error object instead, or no `missing` field: a failed attempt
    (retryable, so it fails over and counts against the target), never a success passed on to the client."""
    detail = _error_message(body) or f"no {missing}"
    return UpstreamError(f"{provider} answered 200 without an answer: {detail}", status=502, body=body)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from `retry-after-ms`, `retry-after` as seconds, or `retry-after` as an HTTP-date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify_http_error(status: int, headers: Mapping[str, str], body: bytes, *, provider: str) -> UpstreamError:
    """Shared classification for JSON APIs: retryable by status, message from the body when it has one."""
    detail = _error_message(body)
    message = f"{provider} returned HTTP {status}" + (f": {detail}" if detail else "")
    retryable = status in RETRYABLE_STATUSES or status >= 500
    return UpstreamError(
        message,
        status=status,
        headers=headers,
        body=body,
        retryable=retryable,
        retry_after=parse_retry_after(headers),
        kind=None if retryable else error_kind(status, body, detail),
    )


# What providers say when a prompt does not fit, or when their safety system refused it.
_CONTEXT_CODES = ("context_length_exceeded", "string_above_max_length")
_CONTEXT_PHRASES = (
    "maximum context length",
    "maximum number of tokens",
    "context length",
    "context window",
    "prompt is too long",
    "too many tokens",
)
_POLICY_CODES = ("content_policy_violation", "content_filter")
_POLICY_PHRASES = ("content management policy", "content policy", "safety system", "flagged as potentially")


# A 401/403/404 about the model asked for (not found, or not allowed for this key) depends on the request: it
# must not take the key out of rotation for everyone. One about the key itself (invalid, revoked) does.
_MODEL_CODES = (b"model_not_found", b"not_found_error", b"model_not_allowed", b"deploymentnotfound")
_MODEL_PHRASES = (
    "does not have access to model",
    "access to the model",
    "not allowed to use model",
    "does not exist",
    "model not found",
    "is not found",
)
_KEY_PHRASES = ("api key", "api_key", "apikey", "authentication", "credential", "revoked", "expired", "token")


def error_kind(status: int, body: bytes, message: str) -> str | None:
    """`context_window` or `content_policy` for a recognised 400-class refusal, `model_access` for a refusal
    of the model asked for (401/403/404: not found, not allowed for this key); None otherwise."""
    if status not in (400, 401, 403, 404, 413, 422):
        return None
    text = message.lower()
    raw = body[:2000].lower()
    if any(code.encode() in raw for code in _CONTEXT_CODES) or any(p in text for p in _CONTEXT_PHRASES):
        return "context_window"
    if any(code.encode() in raw for code in _POLICY_CODES) or any(p in text for p in _POLICY_PHRASES):
        return "content_policy"
    if status in (401, 403, 404) and _about_the_model(raw, text):
        return "model_access"
    return None


def _about_the_model(raw: bytes, text: str) -> bool:
    """The provider's error code says so, or else its message speaks of the model and not of the key."""
    if any(code in raw for code in _MODEL_CODES):
        return True
    return not any(p in text for p in _KEY_PHRASES) and any(p in text for p in _MODEL_PHRASES)


def _error_message(body: bytes) -> str:
    if not body:
        return ""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message")
            if isinstance(msg, str):
                return msg[:300]
        elif isinstance(err, str):
            return err[:300]
    return ""
