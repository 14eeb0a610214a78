"""The Anthropic Messages format as one object, `ANTHROPIC_MESSAGES`: what a client sent, how errors and
in-stream errors look to it, its end-of-stream rule (`message_stop`) and where its streams carry usage. The
conversions to and from the canonical model are in `convert` (requests, answers) and `stream` (events).

Same-format traffic (Anthropic client, Anthropic provider) decodes the body once and forwards it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

import msgspec

from sidestep.core.model import ChatRequest, ChatResponse, Usage
from sidestep.errors import BadRequest, SidestepError, UpstreamError
from sidestep.formats.anthropic_messages.convert import (
    read_request,
    read_response,
    read_usage,
    write_request,
    write_response,
)
from sidestep.formats.anthropic_messages.stream import StreamReader, StreamWriter, error_event
from sidestep.formats.base import ModelCard
from sidestep.formats.body import decode_body, field, is_nonempty_array, output_limit
from sidestep.formats.request import ParsedRequest, models_of

__all__ = ["ANTHROPIC_MESSAGES", "AnthropicMessages", "error_payload"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class AnthropicMessages:
    """`POST /v1/messages` (and `count_tokens`): a client format and a provider format. It has no seam: a
    continued Anthropic stream is always translated, so that it stays one message across targets."""

    name = "anthropic"

    # -- what a client sent ------------------------------------------------------------------------------

    def parse_body(self, raw: bytes, operation: str) -> ParsedRequest:
        """Validate what routing needs, with the messages API's own rules (max_tokens is required)."""
        body = decode_body(raw)
        models = models_of(body)
        if not is_nonempty_array(body, "messages"):
            raise BadRequest("messages: Field required (a non-empty array).", param="messages")
        if operation == "messages":
            limit = field(body, "max_tokens")
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise BadRequest("max_tokens: Field required (an integer >= 1).", param="max_tokens")
        stream = field(body, "stream", False)
        if not isinstance(stream, bool):
            raise BadRequest("stream: Input should be a valid boolean.", param="stream")
        return ParsedRequest(body, models, stream and operation == "messages")

    def include_usage(self, body: dict[str, Any]) -> bool:
        return False  # nothing to ask for: Anthropic streams always carry their usage

    def asking_usage(self, body: dict[str, Any]) -> dict[str, Any] | None:
        return None

    def end_user(self, body: dict[str, Any]) -> str | None:
        metadata = field(body, "metadata") if "metadata" in body else None
        user = metadata.get("user_id") if isinstance(metadata, dict) else None
        return user if isinstance(user, str) and user else None

    def output_limit(self, body: dict[str, Any]) -> int | None:
        return output_limit(body, "max_tokens")  # required, and checked by `parse_body`

    # -- the canonical model -----------------------------------------------------------------------------

    def read_request(self, body: dict[str, Any]) -> ChatRequest:
        return read_request(body)

    def write_request(self, request: ChatRequest) -> dict[str, Any]:
        return write_request(request)

    def read_response(self, raw: bytes) -> ChatResponse:
        return read_response(raw)

    def write_response(self, response: ChatResponse) -> bytes:
        return write_response(response)

    # -- token counts ------------------------------------------------------------------------------------

    def read_token_count(self, raw: bytes) -> int:
        count = _decode(raw).get("input_tokens")
        if not isinstance(count, int):
            raise ValueError("no input_tokens in the answer")
        return count

    def write_token_count(self, tokens: int) -> bytes:
        return _encode({"input_tokens": tokens})

    # -- streams -----------------------------------------------------------------------------------------

    def stream_reader(self) -> StreamReader:
        return StreamReader()

    def stream_writer(self, model: str, include_usage: bool) -> StreamWriter:
        return StreamWriter(model)

    def stream_complete(self, tail: bytes) -> bool:
        return b"message_stop" in tail

    def stream_usage(self, data: dict[str, Any]) -> tuple[Usage | None, bool]:
        """`message_start` (the prompt's) and `message_delta` (the answer's) carry usage; never dropped."""
        usage = data.get("usage")
        message = data.get("message")
        if usage is None and isinstance(message, dict):
            usage = message.get("usage")
        return (read_usage(usage) if isinstance(usage, dict) else None), False

    def stream_error(self, message: str, code: str = "stream_interrupted") -> bytes:
        return error_event(message, "overloaded_error" if code == "all_targets_failed" else "api_error")

    # -- models ------------------------------------------------------------------------------------------

    def write_models(self, cards: Sequence[ModelCard], query: str) -> bytes:
        """A page of `{type: "model", id, display_name, created_at}`, as `limit` (1 to 1000, default 20) and
        `after_id` / `before_id` ask, with `has_more`, `first_id` and `last_id` for the SDK's paginator."""
        try:
            asked = parse_qs(query[:2048], max_num_fields=8)
        except ValueError:
            raise BadRequest("Too many query parameters.") from None
        page, more = _page(list(cards), {name: values[0] for name, values in asked.items()})
        first, last = (page[0].id, page[-1].id) if page else (None, None)
        return _encode({"data": [_model(c) for c in page], "has_more": more, "first_id": first, "last_id": last})

    def write_model(self, card: ModelCard) -> bytes:
        return _encode(_model(card))

    # -- errors --------------------------------------------------------------------------------------------

    def error_body(self, exc: SidestepError) -> bytes:
        return error_payload(exc.status, exc.message)

    def upstream_error_body(self, error: UpstreamError) -> bytes:
        """A caller error from upstream: Anthropic error JSON passes through; any other shape is rewrapped."""
        body = error.body
        try:
            data = _decode(body) if body else None
        except msgspec.DecodeError:
            data = None
        if isinstance(data, dict) and data.get("type") == "error" and isinstance(data.get("error"), dict):
            return body
        return error_payload(error.status, error.message)

    def server_error_body(self, status: int, message: str) -> bytes:
        return error_payload(status, message)


def _page(cards: list[ModelCard], query: dict[str, str]) -> tuple[list[ModelCard], bool]:
    raw = query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise BadRequest("limit: must be an integer from 1 to 1000.", param="limit")
    limit = int(raw)
    ids = [card.id for card in cards]
    before, after = query.get("before_id"), query.get("after_id")
    if before is not None:  # the page that ends just before `before_id`
        end = ids.index(before) if before in ids else 0
        return cards[max(0, end - limit) : end], end - limit > 0
    start = 0 if after is None else ids.index(after) + 1 if after in ids else len(ids)
    return cards[start : start + limit], start + limit < len(cards)


def _model(card: ModelCard) -> dict[str, Any]:
    """Anthropic's model object; the gateway knows no release date (the epoch, as the API allows)."""
    return {
        "type": "model",
        "id": card.id,
        "display_name": card.id,
        "created_at": "1970-01-01T00:00:00Z",
        "lifecycle": "active",
        "deprecated_at": None,
        "retires_at": None,
    }


def error_payload(status: int, message: str) -> bytes:
    kind = _TYPE_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return _encode({"type": "error", "error": {"type": kind, "message": message}})


ANTHROPIC_MESSAGES = AnthropicMessages()
