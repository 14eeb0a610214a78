"""OpenAI's chat-completions and embeddings dialect: what a client sent, and how errors look to it.

Same-format traffic never builds typed objects: the body is decoded once into a dict, routing reads a
few fields, and the provider adapter re-encodes it with the model rewritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from sidestep.dialects.body import decode_body, field, is_nonempty_array
from sidestep.errors import AllAttemptsFailed, BadRequest, SidestepError, UpstreamError
from sidestep.server.types import Response

__all__ = [
    "ParsedRequest",
    "error_response",
    "parse_body",
    "stream_error_event",
    "upstream_error_response",
]

_JSON_HEADERS = [("content-type", "application/json")]
MAX_MODEL_NAME = 256
# What no model id holds: control or line-breaking characters, or a "." or ".." path segment. Adapters escape
# the names they put in URL paths; these are refused outright, before they reach a URL, a header or a log.
_NOT_A_MODEL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]|(?:^|/)\\.\\.?(?:/|$)")
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


@dataclass(slots=True)
class ParsedRequest:
    body: dict[str, Any]
    models: list[str]  # the primary model first, then per-request fallbacks, in order
    stream: bool


def parse_body(raw: bytes, operation: str) -> ParsedRequest:
    """Validate just what routing needs; every other field travels untouched (and undecoded)."""
    body = decode_body(raw)
    models = models_of(body)
    if operation == "chat":
        if not is_nonempty_array(body, "messages"):
            raise BadRequest("'messages' is required and must be a non-empty array.", param="messages")
    elif "input" not in body:
        raise BadRequest("'input' is required.", param="input")
    stream = field(body, "stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean.", param="stream")
    return ParsedRequest(body, models, stream and operation == "chat")


def models_of(body: dict[str, Any]) -> list[str]:
    model = field(body, "model")
    extra: list[str] = []
    for name in ("models", "fallbacks"):  # OpenRouter-style `models`, LiteLLM-style `fallbacks`
        if name not in body:
            continue
        value = field(body, name)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise BadRequest(f"'{name}' must be an array of model names.", param=name)
        for each in value:
            if len(each) > MAX_MODEL_NAME or not each.isprintable() or each[:1] == "." or "/." in each:
                _check_name(each, name)
        extra.extend(value)
    if model is None and extra:
        return extra
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string.", param="model")
    # The usual name is printable and has no segment starting with '.': a check in C, no regex, no call.
    if len(model) > MAX_MODEL_NAME or not model.isprintable() or model[:1] == "." or "/." in model:
        _check_name(model, "model")
    return [model, *extra]


def _check_name(name: str, param: str) -> None:
    if len(name) > MAX_MODEL_NAME or _NOT_A_MODEL.search(name) is not None:
        reason = (
            f"is longer than {MAX_MODEL_NAME} characters"
            if len(name) > MAX_MODEL_NAME
            else "holds a control character or a '.' or '..' path segment"
        )
        raise BadRequest(f"'{param}' is not a valid model name: it {reason}.", param=param, code="invalid_model")


def error_payload(status: int, message: str, *, type_: str | None = None, code: Any = None, param: Any = None) -> bytes:
    error_type = type_ or _TYPE_BY_STATUS.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return _encode({"error": {"message": message, "type": error_type, "param": param, "code": code}})


def error_response(exc: SidestepError, headers: list[tuple[str, str]] | None = None) -> Response:
    type_ = exc.type if not isinstance(exc, UpstreamError | AllAttemptsFailed) else None
    body = error_payload(exc.status, exc.message, type_=type_, code=exc.code, param=exc.param)
    return Response(exc.status, body, _JSON_HEADERS + (headers or []))


def upstream_error_response(error: UpstreamError, headers: list[tuple[str, str]]) -> Response:
    """A non-retryable upstream answer (a 400 for a bad request) goes back with its status; the body is
    passed through when it is already OpenAI error JSON, and wrapped into that shape otherwise."""
    body = error.body
    try:
        data = _decode(body) if body else None
    except msgspec.DecodeError:
        data = None
    if not (isinstance(data, dict) and isinstance(data.get("error"), dict) and "message" in data["error"]):
        body = error_payload(error.status, error.message)
    return Response(error.status, body, _JSON_HEADERS + headers)


def stream_error_event(message: str, code: str = "stream_interrupted") -> bytes:
    """The event that ends a stream whose upstream failed after content was sent (the SDK raises on it)."""
    payload = _encode({"error": {"message": message, "type": "server_error", "param": None, "code": code}})
    return b"data: " + payload + b"\n\n"


def render_server_error(status: int, message: str, path: str = "") -> Response:
    """The server's error renderer (413, 431, malformed HTTP …) in OpenAI's error shape."""
    code = {413: "request_too_large", 431: "headers_too_large"}.get(status)
    return Response(status, error_payload(status, message, code=code), list(_JSON_HEADERS))
