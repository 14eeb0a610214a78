"""Translation between two formats, through the canonical model (`sidestep.core.model`): always
`source.read → canonical → target.write`, with no code for any particular pair. What a request needs of a
model (`request_needs`) is read here too, from the raw body, before any translation.

Same-format pairs never come here: they forward bytes.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidestep.core.model import ChatRequest, ChatResponse, TextPart, ToolCall, Usage, merge_usage
from sidestep.formats.base import Converses, Format, ReadsEmbeddings, Wire, Writer, WritesEmbeddings
from sidestep.formats.body import field, materialize

__all__ = [
    "NO_NEEDS",
    "StreamTranslator",
    "request_needs",
    "to_canonical",
    "translate_embeddings",
    "translate_request",
    "translate_response",
]


_RELAYED = {op: frozenset({op}) for op in ("rerank", "moderations", "images", "transcriptions", "speech")}


def request_needs(
    body: dict[str, Any], stream: bool, operation: str = "chat", raw_body: bytes | None = None
) -> frozenset[str]:
    """Capabilities a request needs, read from the raw body (no canonical model built). A body without the word
    "image" (`raw_body`, else the raw conversation) never has its messages decoded. A format whose fields differ
    reads its own (`ReadsNeeds`: the caller asks it instead, having found it once per route)."""
    if operation != "chat":  # chat first: nearly every request is one
        if operation == "embeddings":
            return _EMBEDDINGS
        if operation == "completions":
            return _COMPLETIONS_STREAM if stream else _COMPLETIONS
        if operation in _RELAYED:  # a relayed-only operation is a capability of its own (`lacks: [rerank]`)
            return _RELAYED[operation]
        if operation == "responses":
            return _responses_needs(body, stream, raw_body)
        if operation == "converse":
            return _converse_needs(body, stream, raw_body)
    raw = body.get("messages")
    text = raw_body if raw_body is not None else bytes(raw) if isinstance(raw, msgspec.Raw) else None
    images = text is None or b'"image' in text
    if not (stream or images or "tools" in body or "response_format" in body):
        return NO_NEEDS  # the usual plain chat request
    found = {"streaming"} if stream else set()
    if field(body, "tools"):
        found.add("tools")
    fmt = field(body, "response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        found.add("json_schema")
    if images:
        for message in field(body, "messages") or ():
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") in _IMAGES for p in content):
                found.add("vision")
                break
    return frozenset(found)


def _responses_needs(body: dict[str, Any], stream: bool, raw_body: bytes | None) -> frozenset[str]:
    """The Responses API's fields: `text.format` for a schema, `input_image` parts for vision."""
    found = {"streaming"} if stream else set()
    if field(body, "tools"):
        found.add("tools")
    fmt = field(body, "text")
    if isinstance(fmt, dict) and isinstance(fmt.get("format"), dict) and fmt["format"].get("type") == "json_schema":
        found.add("json_schema")
    if raw_body is None or b'"input_image"' in raw_body:
        found.add("vision")  # a body without the word is sure to have none; with it, a false positive is harmless
    return frozenset(found)


def _converse_needs(body: dict[str, Any], stream: bool, raw_body: bytes | None) -> frozenset[str]:
    """Bedrock Converse's fields: `toolConfig` for tools, `image` blocks for vision (no schema mode)."""
    found = {"streaming"} if stream else set()
    if field(body, "toolConfig"):
        found.add("tools")
    if raw_body is None or b'"image"' in raw_body:
        found.add("vision")  # a body without the word is sure to have none; with it, a false positive is harmless
    return frozenset(found)


NO_NEEDS: frozenset[str] = frozenset()
_IMAGES = ("image_url", "image")
_EMBEDDINGS = frozenset({"embeddings"})
_COMPLETIONS = frozenset({"completions"})
_COMPLETIONS_STREAM = frozenset({"completions", "streaming"})


def to_canonical(source: Converses, body: dict[str, Any]) -> ChatRequest:
    return source.read_request(materialize(body))


def translate_request(body: dict[str, Any], source: Converses, target: Format) -> dict[str, Any]:
    return target.write_request(source.read_request(materialize(body)))


def translate_response(raw: bytes, source: Format, target: Converses) -> bytes:
    return target.write_response(source.read_response(raw))


def translate_embeddings(
    raw: bytes, source: ReadsEmbeddings, target: WritesEmbeddings, model: str, request: dict[str, Any]
) -> bytes:
    vectors, tokens = source.read_embeddings(raw)
    return target.write_embeddings(vectors, tokens, model, request)


def collected_response(format: Converses, pieces: list[bytes], usage: Usage | None) -> bytes | None:
    """A complete stream of `format` (its event bytes) as the non-stream answer it amounts to, in the same
    format; None when it is not a complete answer (an error event, no end). `usage`: what the provider
    reported, when the stream's own usage event was not relayed."""
    reader = format.stream_reader()
    answer = ChatResponse(id="", model="")
    calls: dict[int, ToolCall] = {}
    text: list[str] = []
    ended = False
    for piece in pieces:
        for event in reader.feed(piece):
            kind = event.kind
            if kind == "text":
                text.append(event.text)
            elif kind == "start":
                answer.id, answer.model = answer.id or event.id, answer.model or event.model
            elif kind == "thinking":
                return None  # reasoning blocks (and their signatures) are not reassembled: not stored
            elif kind == "tool_start":
                calls[event.index] = ToolCall(id=event.id, name=event.name, arguments="")
            elif kind == "tool_args" and event.index in calls:
                calls[event.index].arguments += event.text
            elif kind == "finish":
                answer.finish, answer.stop_sequence = event.finish or answer.finish, event.stop_sequence
            elif kind == "usage" and event.usage is not None:
                answer.usage = event.usage
            elif kind == "end":
                ended = True
            elif kind == "error":
                return None
    if not ended:
        return None
    answer.parts = [TextPart(text="".join(text))] if text else []
    answer.tool_calls = [calls[index] for index in sorted(calls)]
    if usage is not None:
        answer.usage = usage
    return format.write_response(answer)


class StreamTranslator:
    """Provider stream bytes in, client-format stream bytes out, event by event (no buffering)."""

    def __init__(self, source: Wire, writer: Writer) -> None:
        self.reader = source.stream_reader()
        self.writer = writer
        self.ended = False
        self.usage: Usage | None = None  # what the provider reported, whatever the client asked for
        self.chars = 0  # answer text relayed (an estimate's base when the stream ends without usage)

    def feed(self, piece: bytes) -> bytes:
        out = b""
        for event in self.reader.feed(piece):
            if event.kind == "end":
                self.ended = True
            elif event.kind == "usage" and event.usage is not None:
                self.usage = merge_usage(self.usage, event.usage)
            else:
                self.chars += len(event.text)
            out += self.writer.write(event)
        return out

    def relayed_chars(self) -> int:
        return self.chars
