"""Cross-format glue: which dialect an operation speaks, and request/answer/stream translation between a
client's dialect and a provider's wire format through the canonical model (`sidestep.core.model`).

Same-format pairs never come here: they forward bytes.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from sidestep.core.model import ChatRequest, ChatResponse, Event, Usage, merge_usage
from sidestep.dialects import anthropic, anthropic_messages, bedrock, cohere, gemini, openai_chat
from sidestep.dialects.body import field, materialize

__all__ = [
    "DIALECT_OF",
    "NO_NEEDS",
    "Reader",
    "StreamTranslator",
    "Writer",
    "read_answer",
    "request_needs",
    "stream_reader",
    "stream_writer",
    "to_canonical",
    "translate_embeddings",
    "translate_request",
    "translate_response",
]

DIALECT_OF = {"chat": "openai", "embeddings": "openai", "messages": "anthropic", "count_tokens": "anthropic"}
END_MARKER = {"openai": b"[DONE]", "anthropic": b"message_stop"}

_READ_REQUEST: dict[str, Callable[[dict[str, Any]], ChatRequest]] = {
    "openai": openai_chat.read_request,
    "anthropic": anthropic_messages.read_request,
}
_WRITE_REQUEST: dict[str, Callable[[ChatRequest], dict[str, Any]]] = {
    "openai": openai_chat.write_request,
    "anthropic": anthropic_messages.write_request,
    "gemini": gemini.write_request,
    "bedrock": bedrock.write_request,
    "cohere": cohere.write_request,
}
_READ_RESPONSE: dict[str, Callable[[bytes], ChatResponse]] = {
    "openai": openai_chat.read_response,
    "anthropic": anthropic_messages.read_response,
    "gemini": gemini.read_response,
    "bedrock": bedrock.read_response,
    "cohere": cohere.read_response,
}
_WRITE_RESPONSE: dict[str, Callable[[ChatResponse], bytes]] = {
    "openai": openai_chat.write_response,
    "anthropic": anthropic_messages.write_response,
}


class Reader(Protocol):
    def feed(self, piece: bytes) -> list[Event]: ...


class Writer(Protocol):
    def write(self, event: Event) -> bytes: ...

    def error(self, message: str, code: str = "stream_interrupted") -> bytes: ...


def request_needs(
    body: dict[str, Any], stream: bool, operation: str = "chat", raw_body: bytes | None = None
) -> frozenset[str]:
    """Capabilities a request needs, read from the raw body of either dialect (no canonical model built).
    A body without the word "image" (`raw_body`, else the raw conversation) never has its messages decoded."""
    if operation == "embeddings":
        return _EMBEDDINGS
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


NO_NEEDS: frozenset[str] = frozenset()
_IMAGES = ("image_url", "image")
_EMBEDDINGS = frozenset({"embeddings"})


def to_canonical(dialect: str, body: dict[str, Any]) -> ChatRequest:
    return _READ_REQUEST[dialect](materialize(body))


def translate_request(body: dict[str, Any], dialect: str, wire: str) -> dict[str, Any]:
    return _WRITE_REQUEST[wire](_READ_REQUEST[dialect](materialize(body)))


def translate_response(raw: bytes, wire: str, dialect: str) -> bytes:
    return _WRITE_RESPONSE[dialect](_READ_RESPONSE[wire](raw))


def read_answer(raw: bytes, wire: str) -> ChatResponse:
    """A non-stream answer in `wire`'s format as the canonical model (a cached answer replayed as a stream)."""
    return _READ_RESPONSE[wire](raw)


_READ_EMBEDDINGS: dict[str, Callable[[bytes], tuple[list[list[float]], int]]] = {
    "cohere": cohere.read_embeddings,
}


def translate_embeddings(raw: bytes, wire: str, model: str, encoding: Any) -> bytes:
    """A provider's embeddings answer as OpenAI's (`encoding_format: base64` packs float32, as OpenAI does)."""
    vectors, tokens = _READ_EMBEDDINGS[wire](raw)
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if encoding == "base64" else v,
        }
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return msgspec.json.encode({"object": "list", "data": data, "model": model, "usage": usage})


def stream_reader(wire: str) -> Reader:
    if wire == "anthropic":
        return anthropic.StreamReader()
    if wire == "gemini":
        return gemini.StreamReader()
    if wire == "bedrock":
        return bedrock.StreamReader()
    if wire == "cohere":
        return cohere.StreamReader()
    return openai_chat.StreamReader()


def stream_writer(dialect: str, model: str = "", include_usage: bool = False) -> Writer:
    if dialect == "anthropic":
        return anthropic.StreamWriter(model)
    return openai_chat.StreamWriter(model, include_usage)


class StreamTranslator:
    """Provider stream bytes in, client-dialect stream bytes out, event by event (no buffering)."""

    def __init__(self, wire: str, writer: Writer) -> None:
        self.reader = stream_reader(wire)
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
