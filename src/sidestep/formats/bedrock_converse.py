"""AWS Bedrock's Converse wire format ↔ the canonical model (requests out; answers and ConverseStream events
in). Bedrock is a provider format only: no client speaks it here.

ConverseStream answers in AWS's binary event-stream framing, not SSE; frames are decoded with botocore's
`EventStreamBuffer` (imported on first use: `sidestep[bedrock]`), and each frame's `:event-type` header
names the event. `metadata` (usage) arrives after `messageStop`, so the canonical `end` is emitted there.
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
from sidestep.formats.anthropic_messages.convert import append_turn

__all__ = ["BEDROCK_CONVERSE", "POLICY_STOPS", "BedrockConverse", "StreamReader", "read_response", "write_request"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_FINISH: dict[str, Finish] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
POLICY_STOPS = frozenset({"guardrail_intervened", "content_filtered"})
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_JSON_RULE = "Respond with a single JSON object and nothing else."


def write_request(req: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": _messages(req.messages)}
    system = [p.text for p in req.system if p.text]
    if req.json_mode is not None:  # no native JSON mode: ask for it in the system prompt
        schema = (req.json_schema or {}).get("schema")
        system.append(_JSON_RULE + (f" It must match this JSON schema: {_encode(schema).decode()}" if schema else ""))
    if system:
        body["system"] = [{"text": text} for text in system]
    config: dict[str, Any] = {
        k: v
        for k, v in (("maxTokens", req.max_tokens), ("temperature", req.temperature), ("topP", req.top_p))
        if v is not None
    }
    if req.stop:
        config["stopSequences"] = req.stop[:4]
    if config:
        body["inferenceConfig"] = config
    if req.tools:
        tools: dict[str, Any] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": t.name,
                        "description": t.description or t.name,
                        "inputSchema": {"json": t.parameters},
                    }
                }
                for t in req.tools
            ]
        }
        choice = req.tool_choice
        if choice is not None and choice.mode != "none":
            tools["toolChoice"] = _choice(choice.mode, choice.name)
        body["toolConfig"] = tools
    extra: dict[str, Any] = {}
    if req.top_k is not None:
        extra["top_k"] = req.top_k
    if req.thinking_budget:
        extra["thinking"] = {"type": "enabled", "budget_tokens": req.thinking_budget}
    if extra:
        body["additionalModelRequestFields"] = extra
    return body


def _choice(mode: str, name: str | None) -> dict[str, Any]:
    if mode == "tool" and name:
        return {"tool": {"name": name}}
    return {"any": {}} if mode == "required" else {"auto": {}}


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Converse wants user/assistant turns alternating; tool results travel in user turns."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = "assistant" if message.role == "assistant" else "user"
        blocks = [b for b in (_block(part) for part in message.parts) if b is not None]
        blocks += [
            {"toolUse": {"toolUseId": c.id, "name": c.name, "input": _object(c.arguments)}} for c in message.tool_calls
        ]
        append_turn(out, role, blocks)
    return out


def _block(part: Any) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return {"text": part.text} if part.text else None
    if isinstance(part, ImagePart):
        return _image(part)
    if isinstance(part, ToolResultPart):
        content: list[dict[str, Any]] = []
        for item in part.content:
            if isinstance(item, TextPart):
                content.append({"text": item.text})
            elif (image := _image(item)) is not None:
                content.append(image)
        result = {"toolUseId": part.tool_call_id, "content": content or [{"text": ""}]}
        if part.is_error:
            result["status"] = "error"
        return {"toolResult": result}
    if isinstance(part, ThinkingPart) and part.signature:
        return {"reasoningContent": {"reasoningText": {"text": part.text, "signature": part.signature}}}
    return None


def _image(part: ImagePart) -> dict[str, Any] | None:
    """Converse takes image bytes only (base64 in JSON); a URL image cannot be sent and is dropped."""
    if part.data is None:
        return None
    fmt = _IMAGE_FORMATS.get((part.media_type or "image/png").lower(), "png")
    return {"image": {"format": fmt, "source": {"bytes": part.data}}}


def _object(arguments: str) -> dict[str, Any]:
    try:
        value = _decode(arguments) if arguments else {}
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def read_response(raw: bytes) -> ChatResponse:
    data = _decode(raw)
    message = (data.get("output") or {}).get("message") or {}
    parts: list[TextPart | ThinkingPart] = []
    calls: list[ToolCall] = []
    for block in message.get("content") or []:
        if "text" in block:
            parts.append(TextPart(text=str(block["text"])))
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append(
                ToolCall(
                    id=str(use.get("toolUseId", "")),
                    name=str(use.get("name", "")),
                    arguments=_encode(use.get("input") or {}).decode(),
                )
            )
        elif "reasoningContent" in block:
            text = (block["reasoningContent"] or {}).get("reasoningText") or {}
            parts.append(ThinkingPart(text=str(text.get("text", "")), signature=text.get("signature")))
    stop = str(data.get("stopReason", "end_turn"))
    return ChatResponse(
        id=f"bedrock-{int(time.time() * 1000)}",
        model="",
        parts=parts,
        tool_calls=calls,
        finish=_FINISH.get(stop, "stop"),
        usage=_usage(data.get("usage")),
        created=int(time.time()),
    )


def _usage(value: Any) -> Usage:
    if not isinstance(value, dict):
        return Usage()
    return Usage(
        input=int(value.get("inputTokens") or 0),
        output=int(value.get("outputTokens") or 0),
        cached=int(value.get("cacheReadInputTokens") or 0),
        cache_write=int(value.get("cacheWriteInputTokens") or 0),
    )


class StreamReader:
    """ConverseStream bytes (AWS event-stream frames) in, canonical events out; frames may be split anywhere."""

    def __init__(self) -> None:
        from botocore.eventstream import EventStreamBuffer  # optional dependency: sidestep[bedrock]

        self._buffer = EventStreamBuffer()
        self._calls: dict[int, int] = {}  # content block index → tool call index
        self._finish: Finish = "stop"

    def feed(self, piece: bytes) -> list[Event]:
        from botocore.eventstream import ParserError
        from botocore.exceptions import EventStreamError

        events: list[Event] = []
        self._buffer.add_data(piece)
        try:
            for message in self._buffer:
                self._frame(message.headers, message.payload, events)
        except (ParserError, EventStreamError) as exc:
            raise ValueError(f"malformed event-stream frame: {exc}") from exc
        return events

    def _frame(self, headers: dict[str, Any], payload: bytes, events: list[Event]) -> None:
        kind = headers.get(":message-type", "event")
        data = _decode(payload) if payload else {}
        if kind != "event":  # exception or error frame
            name = str(headers.get(":exception-type") or headers.get(":error-code") or "error")
            message = str(data.get("message") or data.get("Message") or name) if isinstance(data, dict) else name
            events.append(Event(kind="error", text=f"{name}: {message}", error_type=name))
            return
        self._event(str(headers.get(":event-type", "")), data if isinstance(data, dict) else {}, events)

    def _event(self, name: str, data: dict[str, Any], events: list[Event]) -> None:
        if name == "messageStart":
            events.append(Event(kind="start", id=f"bedrock-{int(time.time() * 1000)}"))
        elif name == "contentBlockStart":
            use = (data.get("start") or {}).get("toolUse")
            if use:
                index = self._calls.setdefault(int(data.get("contentBlockIndex", 0)), len(self._calls))
                events.append(
                    Event(
                        kind="tool_start", index=index, id=str(use.get("toolUseId", "")), name=str(use.get("name", ""))
                    )
                )
        elif name == "contentBlockDelta":
            self._delta(int(data.get("contentBlockIndex", 0)), data.get("delta") or {}, events)
        elif name == "messageStop":
            stop = str(data.get("stopReason", "end_turn"))
            if stop in POLICY_STOPS:
                events.append(
                    Event(kind="error", text=f"the model's answer was stopped: {stop}", error_type="content_policy")
                )
                return
            events.append(Event(kind="finish", finish=_FINISH.get(stop, "stop")))
        elif name == "metadata":
            events.append(Event(kind="usage", usage=_usage(data.get("usage"))))
            events.append(Event(kind="end"))

    def _delta(self, block: int, delta: dict[str, Any], events: list[Event]) -> None:
        if "text" in delta:
            events.append(Event(kind="text", text=str(delta["text"])))
        elif "toolUse" in delta:
            index = self._calls.setdefault(block, len(self._calls))
            events.append(Event(kind="tool_args", index=index, text=str((delta["toolUse"] or {}).get("input", ""))))
        elif "reasoningContent" in delta:
            reasoning = delta["reasoningContent"] or {}
            if "text" in reasoning:
                events.append(Event(kind="thinking", text=str(reasoning["text"])))
            elif "signature" in reasoning:
                events.append(Event(kind="thinking", signature=str(reasoning["signature"])))


class BedrockConverse:
    """`/converse` and `/converse-stream` (AWS event-stream frames): a provider format."""

    name = "bedrock"

    def write_request(self, request: ChatRequest) -> dict[str, Any]:
        return write_request(request)

    def read_response(self, raw: bytes) -> ChatResponse:
        return read_response(raw)

    def stream_reader(self) -> StreamReader:
        return StreamReader()


BEDROCK_CONVERSE = BedrockConverse()
