"""The OpenAI Responses format as one object, `OPENAI_RESPONSES`: what a client sent (checked whole, once),
how errors and in-stream errors look to it, where its streams carry usage. The conversions are in `convert`
(requests, answers) and `stream` (events).

The body is read whole here, where its errors become 400s, and what it needs of a target is found
(`ParsedRequest.needs`: `responses` when it uses what only the Responses API carries). A target speaking the
Responses API (`responses` in its `serves`) gets it passed through and its answer relayed as bytes (streams: the
end marks and the in-stream error here, `EndMarks`, `ReopensStreams`); any other target gets it translated.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidestep.core.model import ChatRequest, ChatResponse, Usage
from sidestep.errors import BadRequest, SidestepError, UpstreamError
from sidestep.formats.base import CONTINUE_PROMPT
from sidestep.formats.body import decode_body, field, materialize, output_limit
from sidestep.formats.openai_chat.format import error_payload
from sidestep.formats.openai_responses.convert import (
    needs_of,
    read_request,
    read_response,
    read_usage,
    response_object,
    write_request,
)
from sidestep.formats.openai_responses.stream import END_MARKS, StreamReader, StreamWriter, failed_events
from sidestep.formats.request import ParsedRequest, models_of

__all__ = ["OPENAI_RESPONSES", "OpenAIResponses"]

_encode_json = msgspec.json.Encoder().encode


class OpenAIResponses:
    """`POST /v1/responses`: a client format (errors in OpenAI's error shape, as the Responses API has it)."""

    name = "openai-responses"
    end_marks = END_MARKS

    def parse_body(self, raw: bytes, operation: str) -> ParsedRequest:
        """The whole request checked now, so that a malformed item is a 400 before any target is tried."""
        body = decode_body(raw)
        models = models_of(body)
        stream = field(body, "stream", False)
        if not isinstance(stream, bool):
            raise BadRequest("'stream' must be a boolean.", param="stream")
        if "input" not in body:
            raise BadRequest("'input' is required: a string or a non-empty array of items.", param="input")
        if "messages" in body:  # the gateway's own continuation (`mid_stream: continue`) uses it
            raise BadRequest(
                "'messages' is a Chat Completions field; the Responses API takes 'input'.", param="messages"
            )
        whole = materialize(body)
        needs = needs_of(whole)
        read_request(whole, native=bool(needs))
        return ParsedRequest(body, models, stream, needs)

    def continued(self, body: dict[str, Any], partial: str) -> dict[str, Any]:
        """`mid_stream: continue`: the input so far, the text already sent as the assistant's, and a request to
        go on — a Responses body still, so that a target speaking Responses takes it as it is."""
        items = field(body, "input")
        items = [{"role": "user", "content": items}] if isinstance(items, str) else list(items or [])
        items += [{"role": "assistant", "content": partial}, {"role": "user", "content": CONTINUE_PROMPT}]
        return {**body, "input": items}

    def include_usage(self, body: dict[str, Any]) -> bool:
        return True  # `response.completed` always carries the usage

    def asking_usage(self, body: dict[str, Any]) -> dict[str, Any] | None:
        return None  # translated upstream requests ask for usage themselves

    def end_user(self, body: dict[str, Any]) -> str | None:
        for name in ("user", "safety_identifier"):
            user = field(body, name) if name in body else None
            if isinstance(user, str) and user:
                return user
        return None

    def output_limit(self, body: dict[str, Any]) -> int | None:
        return output_limit(body, "max_output_tokens")

    # -- the canonical model -----------------------------------------------------------------------------

    def read_request(self, body: dict[str, Any]) -> ChatRequest:
        return read_request(body)

    def write_request(self, request: ChatRequest) -> dict[str, Any]:
        return write_request(request)

    def read_response(self, raw: bytes) -> ChatResponse:
        return read_response(raw)

    def write_response(self, response: ChatResponse) -> bytes:
        return _encode_json(response_object(response))

    # -- streams -----------------------------------------------------------------------------------------

    def stream_reader(self) -> StreamReader:
        return StreamReader()

    def stream_writer(self, model: str, include_usage: bool) -> StreamWriter:
        return StreamWriter(model, include_usage)

    def stream_complete(self, tail: bytes) -> bool:
        # Forwarded streams are judged by `end_marks` (the final event is the whole response, too long for a
        # tail); this is the weaker rule for a caller without them: the tail ends a JSON event.
        return tail.endswith(b"}\n\n")

    def stream_usage(self, data: dict[str, Any]) -> tuple[Usage | None, bool]:
        if data.get("type") not in ("response.completed", "response.incomplete"):
            return None, False
        return read_usage((data.get("response") or {}).get("usage")), False

    def stream_error(self, message: str, code: str = "stream_interrupted") -> bytes:
        return failed_events(b"", message, code)

    def stream_error_after(self, head: bytes, message: str, code: str = "stream_interrupted") -> bytes:
        return failed_events(head, message, code)

    def refuse_path(self, path: str, method: str) -> SidestepError | None:
        """`GET`/`DELETE /v1/responses/{id}` (and `/input_items`, `/cancel`) need stored responses: they stay at
        the provider that made them, and a path names no route to find it by."""
        return BadRequest(
            f"{method} {path.partition('?')[0]}: sidestep does not store responses, so stored responses cannot"
            " be retrieved, deleted or cancelled through it (a response stored by a provider is reached at that"
            " provider); keep the answers you need, or send 'previous_response_id' to a route whose target"
            " speaks the Responses API.",
            code="storage_unavailable",
        )

    # -- errors --------------------------------------------------------------------------------------------

    def error_body(self, exc: SidestepError) -> bytes:
        return error_payload(exc.status, exc.message, code=exc.code, param=exc.param)

    def upstream_error_body(self, error: UpstreamError) -> bytes:
        """The upstream spoke another format: its message, rewrapped in OpenAI's error shape."""
        return error_payload(error.status, error.message)

    def server_error_body(self, status: int, message: str) -> bytes:
        return error_payload(status, message)


OPENAI_RESPONSES = OpenAIResponses()
