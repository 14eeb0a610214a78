"""Gemini's `generateContent` ↔ the canonical model, provider side: requests written for a Gemini target,
its answers read back (its streams: `stream`). What a Gemini *client* sends and gets is in `client`.

Gemini's function calls carry no ids in most models, so sidestep names them `call_<n>` and, when a
conversation comes back with tool results, finds each result's function name from the assistant turn
that made the call.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from sidestep.core.model import (
    ChatRequest,
    ChatResponse,
    Finish,
    ImagePart,
    Message,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolResultPart,
    Usage,
)

__all__ = ["FINISH", "blocked_reason", "read_response", "read_usage", "write_request"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
FINISH: dict[str, Finish] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
_EFFORT_BUDGET = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}


def write_request(req: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": _contents(req.messages)}
    if req.system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(p.text for p in req.system)}]}
    if req.tools:
        declarations = [
            {"name": t.name, "description": t.description or "", "parameters": t.parameters} for t in req.tools
        ]
        body["tools"] = [{"functionDeclarations": declarations}]
        if req.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": _calling(req.tool_choice.mode, req.tool_choice.name)}
    config = _generation(req)
    if config:
        body["generationConfig"] = config
    return body


def _calling(mode: str, name: str | None) -> dict[str, Any]:
    if mode == "tool" and name:
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    return {"mode": {"required": "ANY", "none": "NONE"}.get(mode, "AUTO")}


def _generation(req: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    pairs = (
        ("maxOutputTokens", req.max_tokens),
        ("temperature", req.temperature),
        ("topP", req.top_p),
        ("topK", req.top_k),
    )
    config.update({k: v for k, v in pairs if v is not None})
    if req.stop:
        config["stopSequences"] = req.stop[:5]
    if req.json_mode is not None:
        config["responseMimeType"] = "application/json"
        schema = (req.json_schema or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    budget = req.thinking_budget or _EFFORT_BUDGET.get(req.reasoning_effort or "")
    if budget:
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": True}
    return config


def _contents(messages: list[Message]) -> list[dict[str, Any]]:
    names = {call.id: call.name for m in messages for call in m.tool_calls}
    out: list[dict[str, Any]] = []
    for message in messages:
        role = "model" if message.role == "assistant" else "user"
        parts = [p for p in (_part(part, names) for part in message.parts) if p is not None]
        parts.extend({"functionCall": {"name": c.name, "args": _object(c.arguments)}} for c in message.tool_calls)
        if not parts:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    return out


def _part(part: Any, names: dict[str, str]) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return {"text": part.text} if part.text else None
    if isinstance(part, ImagePart):
        if part.data is not None:
            return {"inlineData": {"mimeType": part.media_type or "image/png", "data": part.data}}
        return {"fileData": {"mimeType": part.media_type or "image/jpeg", "fileUri": part.url}}
    if isinstance(part, ToolResultPart):
        text = "".join(p.text for p in part.content if isinstance(p, TextPart))
        name = names.get(part.tool_call_id, part.tool_call_id)
        key = "error" if part.is_error else "result"
        return {"functionResponse": {"name": name, "response": {key: _maybe_json(text)}}}
    return None  # thinking is not sent back to Gemini


def _object(arguments: str) -> dict[str, Any]:
    value = _maybe_json(arguments)
    return value if isinstance(value, dict) else {}


def _maybe_json(text: str) -> Any:
    try:
        return _decode(text) if text else {}
    except msgspec.DecodeError:
        return text


def blocked_reason(data: dict[str, Any]) -> str | None:
    """Why Gemini refused the prompt outright (no candidates), e.g. SAFETY; None when it answered."""
    feedback = data.get("promptFeedback") or {}
    reason = feedback.get("blockReason")
    return str(reason) if reason and not data.get("candidates") else None


def read_response(raw: bytes) -> ChatResponse:
    data = _decode(raw)
    candidate = (data.get("candidates") or [{}])[0]
    parts: list[TextPart | ThinkingPart] = []
    calls: list[ToolCall] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if "functionCall" in part:
            call = part["functionCall"]
            ident = call.get("id") or f"call_{len(calls)}"
            calls.append(
                ToolCall(id=ident, name=str(call.get("name", "")), arguments=_encode(call.get("args") or {}).decode())
            )
        elif "text" in part:
            parts.append(ThinkingPart(text=part["text"]) if part.get("thought") else TextPart(text=part["text"]))
    finish = FINISH.get(str(candidate.get("finishReason")), "stop")
    return ChatResponse(
        id=str(data.get("responseId") or f"gemini-{int(time.time() * 1000)}"),
        model=str(data.get("modelVersion", "")),
        parts=parts,
        tool_calls=calls,
        finish="tool_calls" if calls and finish == "stop" else finish,
        usage=read_usage(data.get("usageMetadata")),
        created=int(time.time()),
    )


def read_usage(meta: Any) -> Usage:
    if not isinstance(meta, dict):
        return Usage()
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return Usage(
        input=int(meta.get("promptTokenCount") or 0),
        output=int(meta.get("candidatesTokenCount") or 0) + thoughts,
        cached=int(meta.get("cachedContentTokenCount") or 0),
        reasoning=thoughts,
    )
