"""The Gemini format as one object, `GEMINI`: a provider format (AI Studio and Vertex AI speak it) and a client
format (google-genai pointed at sidestep: `/v1/models/{model}:generateContent` and its siblings, see
`sidestep.endpoints`). What a client sent is checked here by Gemini's own rules; errors and in-stream errors
take Google's shape; embeddings (`embedContent`, `batchEmbedContents`) and token counts (`countTokens`) are
read and written here so that other formats' targets can serve them.

The path names the model and whether the answer streams, so a Gemini body has neither: the gateway sets
`stream` in the body it routes (`streamGenerateContent`), and a client that sends one is refused.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidestep.core.model import ChatRequest, ChatResponse, Usage
from sidestep.errors import BadRequest, SidestepError, UpstreamError
from sidestep.formats.body import decode_body, field, limit_of, materialize
from sidestep.formats.gemini.client import read_request, write_response
from sidestep.formats.gemini.convert import read_response, read_usage, write_request
from sidestep.formats.gemini.errors import error_object, is_google_error
from sidestep.formats.gemini.stream import StreamReader, StreamWriter, error_event
from sidestep.formats.request import ParsedRequest

__all__ = ["GEMINI", "MAX_BATCH", "Gemini"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
MAX_BATCH = 100  # requests in one batchEmbedContents, as the Gemini API allows
_OBJECTS = ("generationConfig", "toolConfig", "generateContentRequest", "content")
_ARRAYS = ("tools", "safetySettings", "requests")
_CONFIG_INTS = ("maxOutputTokens", "topK", "candidateCount", "seed")
_CONFIG_NUMBERS = ("temperature", "topP", "presencePenalty", "frequencyPenalty")


class Gemini:
    """`generateContent`, `streamGenerateContent?alt=sse`, `countTokens`, `embedContent`, `batchEmbedContents`
    (a stream asked without `alt=sse` is `GEMINI_ARRAY`'s: `formats.gemini.array`)."""

    name = "gemini"
    usage_marker = b'"usageMetadata"'  # in every event of a stream: the tap reads the last

    # -- what a client sent ------------------------------------------------------------------------------

    def parse_body(self, raw: bytes, operation: str) -> ParsedRequest:
        """The body checked by the API's rules; the model comes from the path (the gateway sets it)."""
        body = decode_body(raw)
        if "stream" in body:
            raise BadRequest('Invalid JSON payload received. Unknown name "stream": the path says whether to stream.')
        if "messages" in body:  # the gateway's own (`mid_stream: continue`): Gemini speaks of `contents`
            raise BadRequest('Invalid JSON payload received. Unknown name "messages": send the turns in "contents".')
        for name in _OBJECTS:
            if name in body and not isinstance(field(body, name), dict):
                raise BadRequest(f"Invalid value at '{name}': must be an object.", param=name)
        for name in _ARRAYS:
            if name in body and not isinstance(field(body, name), list):
                raise BadRequest(f"Invalid value at '{name}': must be an array.", param=name)
        if operation == "embeddings":
            _check_embeddings(body)
        elif operation == "count_tokens" and "generateContentRequest" in body:
            _check_generation(field(body, "generateContentRequest"), "generateContentRequest.")
        else:
            _check_generation({name: field(body, name) for name in body}, "")
        return ParsedRequest(body, [], False)

    def include_usage(self, body: dict[str, Any]) -> bool:
        return True  # every Gemini stream event carries `usageMetadata`

    def asking_usage(self, body: dict[str, Any]) -> dict[str, Any] | None:
        return None

    def end_user(self, body: dict[str, Any]) -> str | None:
        return None  # Gemini requests name no end user

    def output_limit(self, body: dict[str, Any]) -> int | None:
        """`generationConfig.maxOutputTokens` (a `countTokens` body's wrapped request asks for no answer)."""
        config = field(body, "generationConfig")
        return limit_of(config.get("maxOutputTokens")) if isinstance(config, dict) else None

    def request_needs(self, body: dict[str, Any], stream: bool) -> frozenset[str]:
        """Read from the request as the canonical model has it; a part only Gemini takes needs nothing more
        of a Gemini target, and other targets refuse it when they translate."""
        try:
            found = set(self.read_request(materialize(body)).needs)
        except BadRequest:
            found = set()
        return frozenset({"streaming", *found} if stream else found)

    # -- the canonical model -----------------------------------------------------------------------------

    def read_request(self, body: dict[str, Any]) -> ChatRequest:
        inner = body.get("generateContentRequest")  # countTokens may wrap a whole request
        return read_request(inner if isinstance(inner, dict) else body)

    def write_request(self, request: ChatRequest) -> dict[str, Any]:
        return write_request(request)

    def read_response(self, raw: bytes) -> ChatResponse:
        return read_response(raw)

    def write_response(self, response: ChatResponse) -> bytes:
        return write_response(response)

    # -- embeddings and token counts -----------------------------------------------------------------------

    def embedding_request(self, body: dict[str, Any]) -> tuple[list[str], int | None]:
        """The texts an `embedContent` (one) or `batchEmbedContents` (each request's) body asks to embed."""
        requests = field(body, "requests")
        contents = [r.get("content") for r in requests] if isinstance(requests, list) else [field(body, "content")]
        texts = []
        for content in contents:
            parts = content.get("parts") if isinstance(content, dict) else None
            if not isinstance(parts, list) or not all(isinstance(p, dict) and "text" in p for p in parts):
                raise BadRequest("Only text parts can be embedded by targets other than Gemini.", param="content")
            texts.append(" ".join(str(p["text"]) for p in parts))
        dims = field(body, "outputDimensionality") if "outputDimensionality" in body else None
        if dims is None and isinstance(requests, list) and requests:
            dims = requests[0].get("outputDimensionality")
        return texts, dims if isinstance(dims, int) and not isinstance(dims, bool) else None

    def read_embeddings(self, raw: bytes) -> tuple[list[list[float]], int]:
        data = _decode(raw)
        items = data.get("embeddings") if "embeddings" in data else [data.get("embedding")]
        vectors: list[Any] = [item.get("values") for item in items if isinstance(item, dict)]
        if not vectors or not all(isinstance(v, list) for v in vectors):
            raise ValueError("no embedding values in the answer")
        meta = data.get("usageMetadata") or {}
        return vectors, int(meta.get("promptTokenCount") or 0) if isinstance(meta, dict) else 0

    def write_embeddings(self, vectors: list[list[float]], tokens: int, model: str, request: dict[str, Any]) -> bytes:
        """One vector for `embedContent`, the list for `batchEmbedContents` (the request's shape says which)."""
        if "requests" in request:
            return _encode({"embeddings": [{"values": v} for v in vectors]})
        return _encode({"embedding": {"values": vectors[0] if vectors else []}})

    def read_token_count(self, raw: bytes) -> int:
        count = _decode(raw).get("totalTokens")
        if not isinstance(count, int):
            raise ValueError("no totalTokens in the answer")
        return count

    def write_token_count(self, tokens: int) -> bytes:
        return _encode({"totalTokens": tokens})

    # -- streams -----------------------------------------------------------------------------------------

    def stream_reader(self) -> StreamReader:
        return StreamReader()

    def stream_writer(self, model: str, include_usage: bool) -> StreamWriter:
        return StreamWriter(model)

    def stream_complete(self, tail: bytes) -> bool:
        """Only whether the last event is whole: the event with `finishReason` ends in other fields, so its
        last bytes cannot tell it from the events before it (a translated stream is judged by its reader)."""
        return tail.endswith((b"}\r\n\r\n", b"}\n\n"))

    def stream_usage(self, data: dict[str, Any]) -> tuple[Usage | None, bool]:
        meta = data.get("usageMetadata")
        return (read_usage(meta) if isinstance(meta, dict) else None), False

    def stream_error(self, message: str, code: str = "stream_interrupted") -> bytes:
        return error_event(400 if code == "upstream_rejected" else 503, message)

    def comment(self, text: str) -> bytes:
        """google-genai reads every line that is not `data:` as JSON: a blank line keeps the stream warm."""
        return b"\r\n"

    # -- errors --------------------------------------------------------------------------------------------

    def error_body(self, exc: SidestepError) -> bytes:
        return _encode(error_object(exc.status, exc.message))

    def upstream_error_body(self, error: UpstreamError) -> bytes:
        """A caller error from upstream: Google's error JSON passes through; any other shape is rewrapped."""
        try:
            data = _decode(error.body) if error.body else None
        except msgspec.DecodeError:
            data = None
        return error.body if is_google_error(data) else _encode(error_object(error.status, error.message))

    def server_error_body(self, status: int, message: str) -> bytes:
        return _encode(error_object(status, message))


def _check_generation(body: dict[str, Any], where: str) -> None:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest(f"* {where}contents: contents is not specified (a non-empty array).", param="contents")
    for index, content in enumerate(contents):
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) for p in parts):
            raise BadRequest(f"* {where}contents[{index}].parts: must be a non-empty array of objects.")
        role = content.get("role", "user")
        if role not in ("user", "model", "function", "tool"):
            raise BadRequest(f"* {where}contents[{index}].role: please use a valid role: user, model.")
    config = body.get("generationConfig")
    if config is not None and not isinstance(config, dict):
        raise BadRequest(f"Invalid value at '{where}generationConfig': must be an object.")
    for name in _CONFIG_INTS:
        value = (config or {}).get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise BadRequest(f"Invalid value at '{where}generationConfig.{name}': must be an integer.")
    for name in _CONFIG_NUMBERS:
        value = (config or {}).get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise BadRequest(f"Invalid value at '{where}generationConfig.{name}': must be a number.")
    stops = (config or {}).get("stopSequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise BadRequest(f"Invalid value at '{where}generationConfig.stopSequences': must be an array of strings.")
    for name in ("tools", "safetySettings"):
        value = body.get(name)
        if value is not None and (not isinstance(value, list) or not all(isinstance(t, dict) for t in value)):
            raise BadRequest(f"Invalid value at '{where}{name}': must be an array of objects.")


def _check_embeddings(body: dict[str, Any]) -> None:
    if ("requests" in body) == ("content" in body):
        raise BadRequest("Send 'content' (embedContent) or 'requests' (batchEmbedContents), exactly one of them.")
    requests = field(body, "requests") if "requests" in body else [{"content": field(body, "content")}]
    if not requests or len(requests) > MAX_BATCH:
        raise BadRequest(f"* requests: between 1 and {MAX_BATCH} requests in one batch.", param="requests")
    for index, request in enumerate(requests):
        content = request.get("content") if isinstance(request, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) for p in parts):
            raise BadRequest(f"* requests[{index}].content.parts: must be a non-empty array of objects.")
    dims = field(body, "outputDimensionality")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise BadRequest("Invalid value at 'outputDimensionality': must be a positive integer.")


GEMINI = Gemini()
