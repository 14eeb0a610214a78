"""The OpenAI chat-completions (and embeddings) format as one object, `OPENAI_CHAT`: what a client sent, how
errors and in-stream errors look to it, its end-of-stream rule and where its streams carry usage. The
conversions to and from the canonical model are in `convert` (requests, answers) and `stream` (events).

Same-format traffic never builds typed objects: the body is decoded once into a dict of raw values, routing
reads a few fields, and the provider adapter re-encodes it with the model rewritten.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any

import msgspec

from sidestep.core.model import ChatRequest, ChatResponse, Usage
from sidestep.errors import AllAttemptsFailed, BadRequest, SidestepError, UpstreamError
from sidestep.formats.base import ModelCard
from sidestep.formats.body import decode_body, field, is_nonempty_array, output_limit
from sidestep.formats.openai_chat.convert import read_request, read_response, read_usage, write_request, write_response
from sidestep.formats.openai_chat.stream import Seam, StreamReader, StreamWriter, error_event
from sidestep.formats.request import ParsedRequest, models_of

__all__ = ["OPENAI_CHAT", "OpenAIChat", "error_payload"]

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
_SERVER_CODES = {413: "request_too_large", 431: "headers_too_large"}


class OpenAIChat:
    """`POST /v1/chat/completions` and `/v1/embeddings`: a client format and a provider format."""

    name = "openai"

    # -- what a client sent ------------------------------------------------------------------------------

    def parse_body(self, raw: bytes, operation: str) -> ParsedRequest:
        """Validate just what routing needs; every other field travels untouched (and undecoded)."""
        body = decode_body(raw)
        models = models_of(body)
        if operation == "chat":
            if not is_nonempty_array(body, "messages"):
                raise BadRequest("'messages' is required and must be a non-empty array.", param="messages")
        elif "input" not in body:
            raise BadRequest("'input' is required.", param="input")
        stream_ = field(body, "stream", False)
        if not isinstance(stream_, bool):
            raise BadRequest("'stream' must be a boolean.", param="stream")
        return ParsedRequest(body, models, stream_ and operation == "chat")

    def include_usage(self, body: dict[str, Any]) -> bool:
        options = field(body, "stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))

    def asking_usage(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """OpenAI streams report usage only when `stream_options.include_usage` asks for it."""
        options = field(body, "stream_options")
        return {**body, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}}

    def end_user(self, body: dict[str, Any]) -> str | None:
        user = field(body, "user") if "user" in body else None
        return user if isinstance(user, str) and user else None

    def output_limit(self, body: dict[str, Any]) -> int | None:
        """`max_completion_tokens`, else the older `max_tokens` (what the legacy completions name it too)."""
        if "max_completion_tokens" in body:  # the rarer name: one dict probe on the usual request
            return output_limit(body, "max_completion_tokens") or output_limit(body, "max_tokens")
        return output_limit(body, "max_tokens")

    # -- the canonical model -----------------------------------------------------------------------------

    def read_request(self, body: dict[str, Any]) -> ChatRequest:
        return read_request(body)

    def write_request(self, request: ChatRequest) -> dict[str, Any]:
        return write_request(request)

    def read_response(self, raw: bytes) -> ChatResponse:
        return read_response(raw)

    def write_response(self, response: ChatResponse) -> bytes:
        return write_response(response)

    def write_embeddings(self, vectors: list[list[float]], tokens: int, model: str, request: dict[str, Any]) -> bytes:
        """Vectors as OpenAI's embeddings answer (`encoding_format: base64` packs float32, as OpenAI does)."""
        encoding = field(request, "encoding_format") if "encoding_format" in request else None
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if encoding == "base64" else v,
            }
            for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return _encode({"object": "list", "data": data, "model": model, "usage": usage})

    def read_embeddings(self, raw: bytes) -> tuple[list[list[float]], int]:
        """Vectors (in input order) and prompt tokens of an embeddings answer asked for as floats."""
        data = _decode(raw)
        items = sorted(data.get("data") or [], key=lambda item: item.get("index", 0))
        vectors = [item.get("embedding") for item in items]
        if not vectors or not all(isinstance(v, list) for v in vectors):
            raise ValueError("no float embeddings in the answer")
        return vectors, int((data.get("usage") or {}).get("prompt_tokens") or 0)

    def embedding_request(self, body: dict[str, Any]) -> tuple[list[str], int | None]:
        """The texts `input` asks to embed (a string or an array of strings; token arrays only go to OpenAI)."""
        value = field(body, "input")
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise BadRequest("'input' must be a string or an array of strings for this target.", param="input")
        dims = field(body, "dimensions") if "dimensions" in body else None
        return texts, dims if isinstance(dims, int) and not isinstance(dims, bool) else None

    # -- models ------------------------------------------------------------------------------------------

    def write_models(self, cards: Sequence[ModelCard], query: str) -> bytes:
        """`{"object": "list", "data": [...]}`: OpenAI's list is not paged."""
        return _encode({"object": "list", "data": [_model(card) for card in cards]})

    def write_model(self, card: ModelCard) -> bytes:
        return _encode(_model(card))

    # -- streams -----------------------------------------------------------------------------------------

    def stream_reader(self) -> StreamReader:
        return StreamReader()

    def stream_writer(self, model: str, include_usage: bool) -> StreamWriter:
        return StreamWriter(model, include_usage)

    def seam(self, stream_id: str) -> Seam:
        return Seam(stream_id)

    def stream_complete(self, tail: bytes) -> bool:
        return b"[DONE]" in tail

    def stream_usage(self, data: dict[str, Any]) -> tuple[Usage | None, bool]:
        """The last chunk's usage; a chunk with no choices carries nothing else (the gateway may drop it)."""
        usage = data.get("usage")
        if not isinstance(usage, dict):
            return None, False
        return read_usage(usage), not data.get("choices")

    def stream_error(self, message: str, code: str = "stream_interrupted") -> bytes:
        return error_event(message, "server_error", code)

    # -- errors --------------------------------------------------------------------------------------------

    def error_body(self, exc: SidestepError) -> bytes:
        type_ = exc.type if not isinstance(exc, UpstreamError | AllAttemptsFailed) else None
        return error_payload(exc.status, exc.message, type_=type_, code=exc.code, param=exc.param)

    def upstream_error_body(self, error: UpstreamError) -> bytes:
        """A non-retryable upstream answer (a 400 for a bad request) goes back with its status; the body is
        passed through when it is already OpenAI error JSON, and wrapped into that shape otherwise."""
        body = error.body
        try:
            data = _decode(body) if body else None
        except msgspec.DecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict) and "message" in data["error"]:
            return body
        return error_payload(error.status, error.message)

    def server_error_body(self, status: int, message: str) -> bytes:
        return error_payload(status, message, code=_SERVER_CODES.get(status))


def _model(card: ModelCard) -> dict[str, Any]:
    return {"id": card.id, "object": "model", "created": 0, "owned_by": card.owned_by}


def error_payload(status: int, message: str, *, type_: str | None = None, code: Any = None, param: Any = None) -> bytes:
    error_type = type_ or _TYPE_BY_STATUS.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return _encode({"error": {"message": message, "type": error_type, "param": param, "code": code}})


OPENAI_CHAT = OpenAIChat()
