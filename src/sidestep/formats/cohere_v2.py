"""Cohere's Chat v2 wire format (`POST /v2/chat`) ↔ the canonical model (requests out; answers and SSE
stream events in). Cohere is a provider format only: no client speaks it here.

v2 is close to OpenAI's shape (roles, `tool_calls` with JSON-text arguments, `tool` messages) with its own
names: `p`/`k`, `stop_sequences`, upper-case `tool_choice`, `finish_reason` `COMPLETE`/`TOOL_CALL`/…, usage
under `usage.tokens` (billed units under `usage.billed_units`), and typed stream events whose `type`
field names them (`content-delta`, `tool-call-start`, `message-end`, …).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from sidestep.core.model import (
    ChatRequest,
    ChatResponse,
    Event,
    Finish,
    ImagePart,
    Message,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolResultPart,
    Usage,
)
from sidestep.formats.sse import SSESplitter

__all__ = [
    "COHERE_V2",
    "CohereV2",
    "StreamReader",
    "embeddings_request",
    "read_embeddings",
    "read_response",
    "write_request",
]

_decode = msgspec.json.Decoder().decode
_FINISH: dict[str, Finish] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "error",
    "TIMEOUT": "error",
}


def write_request(req: ChatRequest) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    system = "\n\n".join(p.text for p in req.system if p.text)
    if system:
        messages.append({"role": "system", "content": system})
    for message in req.messages:
        messages += _messages(message)
    body: dict[str, Any] = {"model": req.model, "messages": messages, "stream": req.stream}
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description or "", "parameters": t.parameters},
            }
            for t in req.tools
        ]
        mode = req.tool_choice.mode if req.tool_choice is not None else "auto"
        if mode in ("required", "tool"):
            body["tool_choice"] = "REQUIRED"  # v2 cannot name one tool; the model must call one of them
        elif mode == "none":
            body["tool_choice"] = "NONE"
    if req.json_mode is not None:
        fmt: dict[str, Any] = {"type": "json_object"}
        schema = (req.json_schema or {}).get("schema")
        if schema:
            fmt["json_schema"] = schema
        body["response_format"] = fmt
    pairs = (("max_tokens", req.max_tokens), ("temperature", req.temperature), ("p", req.top_p), ("k", req.top_k))
    body.update({k: v for k, v in pairs if v is not None})
    if req.stop:
        body["stop_sequences"] = req.stop
    if req.thinking_budget:
        body["thinking"] = {"type": "enabled", "token_budget": req.thinking_budget}
    return body


def _messages(message: Message) -> list[dict[str, Any]]:
    results = [
        {"role": "tool", "tool_call_id": p.tool_call_id, "content": _result_text(p)}
        for p in message.parts
        if isinstance(p, ToolResultPart)
    ]
    if results:  # an Anthropic user turn may carry text after its tool results: it follows them
        return results + ([{"role": "user", "content": message.text}] if message.text else [])
    content = [c for c in (_content(part) for part in message.parts) if c is not None]
    out: dict[str, Any] = {"role": message.role}
    if message.role == "assistant":
        text = message.text
        if text:
            out["content"] = text
        if message.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in message.tool_calls
            ]
        return [out] if len(out) > 1 else []
    out["content"] = content if any(c["type"] != "text" for c in content) else message.text
    return [out]


def _content(part: Any) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        return {"type": "image_url", "image_url": {"url": part.data_url}}
    return None


def _result_text(part: ToolResultPart) -> str:
    return "".join(p.text for p in part.content if isinstance(p, TextPart))


def read_response(raw: bytes) -> ChatResponse:
    data = _decode(raw)
    message = data.get("message") or {}
    parts: list[TextPart | ThinkingPart] = []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            parts.append(TextPart(text=str(block.get("text", ""))))
        elif block.get("type") == "thinking":
            parts.append(ThinkingPart(text=str(block.get("thinking", ""))))
    calls = [
        ToolCall(id=str(c.get("id", "")), name=str(fn.get("name", "")), arguments=str(fn.get("arguments") or "{}"))
        for c in message.get("tool_calls") or []
        for fn in [c.get("function") or {}]
    ]
    return ChatResponse(
        id=str(data.get("id") or f"cohere-{int(time.time() * 1000)}"),
        model="",
        parts=parts,
        tool_calls=calls,
        finish=_FINISH.get(str(data.get("finish_reason")), "stop"),
        usage=usage_of(data.get("usage")),
        created=int(time.time()),
    )


def usage_of(value: Any) -> Usage:
    if not isinstance(value, dict):
        return Usage()
    tokens = value.get("tokens") or value.get("billed_units") or {}
    return Usage(input=int(tokens.get("input_tokens") or 0), output=int(tokens.get("output_tokens") or 0))


class StreamReader:
    """`/v2/chat` SSE bytes in, canonical events out; `message-end` carries the finish and the usage."""

    def __init__(self) -> None:
        self._splitter = SSESplitter()
        self._calls = 0

    def feed(self, piece: bytes) -> list[Event]:
        events: list[Event] = []
        for data in self._splitter.feed(piece):
            if data.strip() == b"[DONE]":
                continue
            item = _decode(data)
            if isinstance(item, dict):
                self._event(item, events)
        return events

    def _event(self, item: dict[str, Any], events: list[Event]) -> None:
        kind = item.get("type")
        delta = (item.get("delta") or {}).get("message") or {}
        if kind == "message-start":
            events.append(Event(kind="start", id=str(item.get("id") or "cohere")))
        elif kind == "content-delta":
            content = delta.get("content") or {}
            if content.get("thinking"):
                events.append(Event(kind="thinking", text=str(content["thinking"])))
            elif content.get("text"):
                events.append(Event(kind="text", text=str(content["text"])))
        elif kind == "tool-call-start":
            call = delta.get("tool_calls") or {}
            function = call.get("function") or {}
            index = self._calls
            self._calls += 1
            events.append(
                Event(kind="tool_start", index=index, id=str(call.get("id", "")), name=str(function.get("name", "")))
            )
            if function.get("arguments"):
                events.append(Event(kind="tool_args", index=index, text=str(function["arguments"])))
        elif kind == "tool-call-delta":
            arguments = ((delta.get("tool_calls") or {}).get("function") or {}).get("arguments")
            if arguments:
                events.append(Event(kind="tool_args", index=max(0, self._calls - 1), text=str(arguments)))
        elif kind == "message-end":
            self._end(item.get("delta") or {}, events)

    def _end(self, delta: dict[str, Any], events: list[Event]) -> None:
        if delta.get("error"):
            events.append(Event(kind="error", text=str(delta["error"]), error_type="api_error"))
            return
        events.append(Event(kind="finish", finish=_FINISH.get(str(delta.get("finish_reason")), "stop")))
        events.append(Event(kind="usage", usage=usage_of(delta.get("usage"))))
        events.append(Event(kind="end"))


def embeddings_request(body: dict[str, Any], model: str, input_type: str) -> dict[str, Any]:
    """An OpenAI embeddings request as Cohere's `/v2/embed`. Token-array inputs have no Cohere form."""
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError("Cohere embeds text: send `input` as a string or a list of strings")
    out: dict[str, Any] = {"model": model, "texts": texts, "input_type": input_type, "embedding_types": ["float"]}
    if isinstance(body.get("dimensions"), int):
        out["output_dimension"] = body["dimensions"]
    return out


def read_embeddings(raw: bytes) -> tuple[list[list[float]], int]:
    """Vectors (in input order) and billed input tokens of a `/v2/embed` answer."""
    data = _decode(raw)
    vectors = (data.get("embeddings") or {}).get("float")
    if not isinstance(vectors, list):
        raise ValueError("no float embeddings in the answer")
    meta = (data.get("meta") or {}).get("billed_units") or {}
    return vectors, int(meta.get("input_tokens") or 0)


class CohereV2:
    """`/v2/chat` (SSE streams) and `/v2/embed`: a provider format whose embeddings answer can be read."""

    name = "cohere"

    def write_request(self, request: ChatRequest) -> dict[str, Any]:
        return write_request(request)

    def read_response(self, raw: bytes) -> ChatResponse:
        return read_response(raw)

    def stream_reader(self) -> StreamReader:
        return StreamReader()

    def read_embeddings(self, raw: bytes) -> tuple[list[list[float]], int]:
        return read_embeddings(raw)


COHERE_V2 = CohereV2()
