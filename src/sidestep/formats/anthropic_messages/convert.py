"""Anthropic's Messages API ↔ the canonical model: requests and answers, both directions (streams: `stream`).

Used only when the client's format and the provider's differ; Anthropic-in, Anthropic-out forwards bytes.
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
    Part,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResultPart,
    Usage,
)
from sidestep.errors import BadRequest

__all__ = [
    "FINISH_IN",
    "FINISH_OUT",
    "append_turn",
    "message_id",
    "read_request",
    "read_response",
    "read_usage",
    "usage_out",
    "write_request",
    "write_response",
]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_KNOWN = {
    "model", "messages", "system", "tools", "tool_choice", "max_tokens", "temperature", "top_p", "top_k",
    "stop_sequences", "stream", "thinking", "metadata", "fallbacks", "models", "route",
}  # fmt: skip
FINISH_IN: dict[str, Finish] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
FINISH_OUT = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI-format clients often leave it out
_EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}


# -- requests -----------------------------------------------------------------------------------------


def read_request(body: dict[str, Any]) -> ChatRequest:
    system = body.get("system")
    thinking = _dict(body.get("thinking"))
    metadata = _dict(body.get("metadata"))
    return ChatRequest(
        model=str(body.get("model", "")),
        messages=[_message(m, i) for i, m in enumerate(body.get("messages") or [])],
        system=[TextPart(text=system)] if isinstance(system, str) else _text_blocks(system),
        tools=[_tool(t) for t in body.get("tools") or [] if isinstance(t, dict) and "input_schema" in t],
        tool_choice=_choice(body.get("tool_choice")),
        max_tokens=body.get("max_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        stop=list(body.get("stop_sequences") or []),
        stream=body.get("stream") is True,
        include_usage=True,
        thinking_budget=thinking.get("budget_tokens") if thinking.get("type") == "enabled" else None,
        user=metadata.get("user_id"),
        extras={k: v for k, v in body.items() if k not in _KNOWN},
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text_blocks(value: Any) -> list[TextPart]:
    return [
        TextPart(text=str(b.get("text", ""))) for b in value or [] if isinstance(b, dict) and b.get("type") == "text"
    ]


def _message(raw: Any, index: int) -> Message:
    if not isinstance(raw, dict) or raw.get("role") not in ("user", "assistant"):
        raise BadRequest(f"messages.{index}.role: must be 'user' or 'assistant'", param=f"messages.{index}")
    content = raw.get("content")
    if isinstance(content, str):
        return Message(role=raw["role"], parts=[TextPart(text=content)])
    if not isinstance(content, list):
        raise BadRequest(f"messages.{index}.content: must be a string or a list of blocks", param=f"messages.{index}")
    parts: list[Part] = []
    calls: list[ToolCall] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_use":
            arguments = _encode(block.get("input") or {}).decode()
            calls.append(ToolCall(id=str(block.get("id", "")), name=str(block.get("name", "")), arguments=arguments))
        elif kind is not None:
            part = _part(block, kind)
            if part is not None:
                parts.append(part)
    return Message(role=raw["role"], parts=parts, tool_calls=calls)


def _part(block: dict[str, Any], kind: str) -> Part | None:
    if kind == "text":
        return TextPart(text=str(block.get("text", "")))
    if kind == "image":
        return _image(block.get("source") or {})
    if kind == "thinking":
        return ThinkingPart(text=str(block.get("thinking", "")), signature=block.get("signature"))
    if kind == "tool_result":
        inner = block.get("content")
        items: list[TextPart | ImagePart] = []
        if isinstance(inner, str):
            items.append(TextPart(text=inner))
        for sub in inner if isinstance(inner, list) else []:
            if isinstance(sub, dict) and sub.get("type") == "text":
                items.append(TextPart(text=str(sub.get("text", ""))))
            elif isinstance(sub, dict) and sub.get("type") == "image":
                items.append(_image(sub.get("source") or {}))
        return ToolResultPart(
            tool_call_id=str(block.get("tool_use_id", "")), content=items, is_error=bool(block.get("is_error"))
        )
    return None  # redacted thinking, documents, server tools: not portable


def _image(source: dict[str, Any]) -> ImagePart:
    if source.get("type") == "url":
        return ImagePart(url=str(source.get("url", "")))
    return ImagePart(data=str(source.get("data", "")), media_type=str(source.get("media_type", "image/png")))


def _tool(raw: dict[str, Any]) -> Tool:
    return Tool(name=str(raw.get("name", "")), description=raw.get("description"), parameters=raw["input_schema"])


def _choice(value: Any) -> ToolChoice | None:
    if not isinstance(value, dict):
        return None
    parallel = False if value.get("disable_parallel_tool_use") else None
    mode = {"auto": "auto", "any": "required", "none": "none", "tool": "tool"}.get(str(value.get("type")), "auto")
    return ToolChoice(mode=mode, name=value.get("name"), parallel=parallel)  # type: ignore[arg-type]


def write_request(req: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": req.model, "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS}
    system = "\n\n".join(p.text for p in req.system)
    if req.json_mode is not None:  # no native JSON mode: ask for it in the system prompt
        schema = (req.json_schema or {}).get("schema")
        rule = "Respond with a single JSON object and nothing else."
        system = (
            (system + "\n\n" if system else "")
            + rule
            + (f" It must match this JSON schema: {_encode(schema).decode()}" if schema else "")
        )
    if system:
        body["system"] = system
    body["messages"] = _messages_out(req.messages)
    if req.tools:
        body["tools"] = [
            _drop_none(name=t.name, description=t.description, input_schema=t.parameters) for t in req.tools
        ]
        choice = _choice_out(req.tool_choice)
        if choice is not None:
            body["tool_choice"] = choice
    if req.temperature is not None:
        body["temperature"] = min(1.0, req.temperature)  # OpenAI allows up to 2
    body.update({k: v for k, v in (("top_p", req.top_p), ("top_k", req.top_k)) if v is not None})
    if req.stop:
        body["stop_sequences"] = req.stop
    budget = req.thinking_budget or _EFFORT_BUDGET.get(req.reasoning_effort or "")
    if budget:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        body["max_tokens"] = max(body["max_tokens"], budget + 1024)
        body.pop("temperature", None)  # thinking requires the default temperature
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if req.stream:
        body["stream"] = True
    return body


def _messages_out(messages: list[Message]) -> list[dict[str, Any]]:
    """Anthropic wants user/assistant turns; OpenAI's `tool` messages become user turns of tool results,
    and consecutive turns of the same role are merged."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = "assistant" if message.role == "assistant" else "user"
        blocks = [b for b in (_block(p) for p in message.parts) if b is not None]
        blocks.extend(_tool_use(call) for call in message.tool_calls)
        append_turn(out, role, blocks)
    for turn in out:  # tool results must come first in a user turn
        turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    return out


def _block(part: Part) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, ImagePart):
        return {"type": "image", "source": _source(part)}
    if isinstance(part, ThinkingPart):  # only signed thinking can be sent back
        return {"type": "thinking", "thinking": part.text, "signature": part.signature} if part.signature else None
    content = [b for b in (_block(p) for p in part.content) if b is not None]
    return {"type": "tool_result", "tool_use_id": part.tool_call_id, "content": content, "is_error": part.is_error}


def _source(part: ImagePart) -> dict[str, Any]:
    if part.url is not None:
        return {"type": "url", "url": part.url}
    return {"type": "base64", "media_type": part.media_type or "image/png", "data": part.data or ""}


def _tool_use(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": _json_object(call.arguments)}


def _json_object(arguments: str) -> Any:
    try:
        value = _decode(arguments) if arguments else {}
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {"value": value}


def _choice_out(choice: ToolChoice | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    out: dict[str, Any] = {"type": {"required": "any"}.get(choice.mode, choice.mode)}
    if choice.mode == "tool":
        out["name"] = choice.name
    if choice.parallel is False and choice.mode != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _drop_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# -- answers ------------------------------------------------------------------------------------------


def read_response(raw: bytes) -> ChatResponse:
    data = _decode(raw)
    parts: list[TextPart | ThinkingPart] = []
    calls: list[ToolCall] = []
    for block in data.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            parts.append(TextPart(text=block.get("text", "")))
        elif kind == "thinking":
            parts.append(ThinkingPart(text=block.get("thinking", ""), signature=block.get("signature")))
        elif kind == "tool_use":
            calls.append(
                ToolCall(
                    id=block.get("id", ""),
                    name=block.get("name", ""),
                    arguments=_encode(block.get("input") or {}).decode(),
                )
            )
    return ChatResponse(
        id=str(data.get("id", "")),
        model=str(data.get("model", "")),
        parts=parts,
        tool_calls=calls,
        finish=FINISH_IN.get(str(data.get("stop_reason")), "stop"),
        stop_sequence=data.get("stop_sequence"),
        usage=read_usage(data.get("usage")),
        created=int(time.time()),
    )


def read_usage(usage: Any) -> Usage:
    """Anthropic counts cached input apart from `input_tokens`; canonical `input` is the whole prompt."""
    if not isinstance(usage, dict):
        return Usage()
    cached = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    return Usage(
        input=int(usage.get("input_tokens") or 0) + cached + written,
        output=int(usage.get("output_tokens") or 0),
        cached=cached,
        cache_write=written,
    )


def usage_out(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": max(0, usage.input - usage.cached - usage.cache_write),
        "output_tokens": usage.output,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cached,
    }


def message_id(ident: str) -> str:
    return ident if ident.startswith("msg_") else f"msg_{ident}"


def write_response(resp: ChatResponse) -> bytes:
    content: list[dict[str, Any]] = []
    for part in resp.parts:
        if isinstance(part, ThinkingPart):
            content.append({"type": "thinking", "thinking": part.text, "signature": part.signature or ""})
        elif part.text:
            content.append({"type": "text", "text": part.text})
    content.extend(_tool_use(call) for call in resp.tool_calls)
    body = {
        "id": message_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": FINISH_OUT.get(resp.finish, "end_turn"),
        "stop_sequence": resp.stop_sequence,
        "usage": usage_out(resp.usage),
    }
    return _encode(body)


def append_turn(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Add content blocks as a turn; consecutive turns of one role merge (Anthropic and Bedrock Converse
    both require user and assistant turns to alternate)."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})
