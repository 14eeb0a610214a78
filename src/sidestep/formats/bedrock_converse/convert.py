"""Converse requests and answers ↔ the canonical model, both ways: what a provider is sent and answers
(`write_request`, `read_response`) and what a client sends and is answered (`read_request`, `write_response`).
Streams are `eventstream`'s.

Converse has no `stream` field: the path says it (`/converse-stream`). The gateway marks a request it read
from such a path with `"stream": true` (a gateway field, never sent upstream), which `read_request` reads.
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
    Role,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResultPart,
    Usage,
)
from sidestep.formats.anthropic_messages.convert import append_turn

__all__ = [
    "FINISH",
    "GATEWAY_FIELDS",
    "POLICY_STOPS",
    "STOP_REASONS",
    "invoked_usage",
    "read_request",
    "read_response",
    "read_usage",
    "usage_out",
    "write_request",
    "write_response",
]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
FINISH: dict[str, Finish] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
POLICY_STOPS = frozenset({"guardrail_intervened", "content_filtered"})
STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "content_filtered",
    "error": "end_turn",
}
GATEWAY_FIELDS = ("stream", "fallbacks", "models", "route")  # the gateway's, never Bedrock's: not sent on
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
_JSON_RULE = "Respond with a single JSON object and nothing else."
_KNOWN = frozenset(
    {"messages", "system", "inferenceConfig", "toolConfig", "additionalModelRequestFields", *GATEWAY_FIELDS}
)


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
        finish=FINISH.get(stop, "stop"),
        usage=read_usage(data.get("usage")),
        created=int(time.time()),
    )


def read_usage(value: Any) -> Usage:
    if not isinstance(value, dict):
        return Usage()
    return Usage(
        input=int(value.get("inputTokens") or 0),
        output=int(value.get("outputTokens") or 0),
        cached=int(value.get("cacheReadInputTokens") or 0),
        cache_write=int(value.get("cacheWriteInputTokens") or 0),
    )


def invoked_usage(data: dict[str, Any]) -> Usage:
    """The usage in an InvokeModel answer, the model's own body: Claude's `usage` (`input_tokens` …) or a
    Converse-like one; nothing when the model's body has none (Bedrock reports it in headers then)."""
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return Usage()
    if "inputTokens" in usage or "outputTokens" in usage:
        return read_usage(usage)
    found = {name: usage.get(name) for name in ("input_tokens", "output_tokens")}
    counts = {name: value if isinstance(value, int) else 0 for name, value in found.items()}
    return Usage(input=counts["input_tokens"], output=counts["output_tokens"])


def usage_out(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    out = {"inputTokens": usage.input, "outputTokens": usage.output, "totalTokens": usage.input + usage.output}
    if usage.cached:
        out["cacheReadInputTokens"] = usage.cached
    if usage.cache_write:
        out["cacheWriteInputTokens"] = usage.cache_write
    return out


# -- what a client sends and is answered ------------------------------------------------------------------


def read_request(body: dict[str, Any]) -> ChatRequest:
    """A Converse request (already checked by `format.check_request`) as the canonical model."""
    config = _dict(body.get("inferenceConfig"))
    extra = _dict(body.get("additionalModelRequestFields"))
    thinking = _dict(extra.get("thinking"))
    tools = _dict(body.get("toolConfig"))
    return ChatRequest(
        model=str(body.get("model", "")),
        messages=[_message_in(m) for m in body.get("messages") or [] if isinstance(m, dict)],
        system=[TextPart(text=str(b["text"])) for b in body.get("system") or [] if isinstance(b, dict) and "text" in b],
        tools=[_tool_in(t["toolSpec"]) for t in tools.get("tools") or [] if isinstance(t, dict) and "toolSpec" in t],
        tool_choice=_choice_in(tools.get("toolChoice")),
        max_tokens=config.get("maxTokens"),
        temperature=config.get("temperature"),
        top_p=config.get("topP"),
        top_k=extra.get("top_k") if isinstance(extra.get("top_k"), int) else None,
        stop=[str(s) for s in config.get("stopSequences") or []],
        stream=body.get("stream") is True,
        include_usage=True,  # ConverseStream always ends with its usage (`metadata`)
        thinking_budget=thinking.get("budget_tokens") if thinking.get("type") == "enabled" else None,
        extras={k: v for k, v in body.items() if k not in _KNOWN},
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _message_in(raw: dict[str, Any]) -> Message:
    role: Role = "assistant" if raw.get("role") == "assistant" else "user"
    content = raw.get("content")
    if isinstance(content, str):  # only the gateway writes one (a continuation's turns)
        return Message(role=role, parts=[TextPart(text=content)])
    parts: list[Any] = []
    calls: list[ToolCall] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if "toolUse" in block:
            use = _dict(block["toolUse"])
            arguments = _encode(use.get("input") or {}).decode()
            calls.append(ToolCall(id=str(use.get("toolUseId", "")), name=str(use.get("name", "")), arguments=arguments))
        elif (part := _part_in(block)) is not None:
            parts.append(part)
    return Message(role=role, parts=parts, tool_calls=calls)


def _part_in(block: dict[str, Any]) -> Any:
    if "text" in block:
        return TextPart(text=str(block["text"]))
    if "image" in block:
        return _image_in(_dict(block["image"]))
    if "toolResult" in block:
        result = _dict(block["toolResult"])
        items: list[TextPart | ImagePart] = []
        for item in result.get("content") or []:
            if isinstance(item, dict) and "text" in item:
                items.append(TextPart(text=str(item["text"])))
            elif isinstance(item, dict) and "json" in item:
                items.append(TextPart(text=_encode(item["json"]).decode()))
            elif isinstance(item, dict) and "image" in item:
                items.append(_image_in(_dict(item["image"])))
        ident = str(result.get("toolUseId", ""))
        return ToolResultPart(tool_call_id=ident, content=items, is_error=result.get("status") == "error")
    if "reasoningContent" in block:
        text = _dict(_dict(block["reasoningContent"]).get("reasoningText"))
        return ThinkingPart(text=str(text.get("text", "")), signature=text.get("signature"))
    return None  # documents, videos, guard content, cache points: not portable


def _image_in(image: dict[str, Any]) -> ImagePart:
    data = _dict(image.get("source")).get("bytes")
    return ImagePart(data=str(data or ""), media_type=_MEDIA_TYPES.get(str(image.get("format")), "image/png"))


def _tool_in(spec: dict[str, Any]) -> Tool:
    schema = _dict(spec.get("inputSchema")).get("json")
    parameters = schema if isinstance(schema, dict) else {"type": "object", "properties": {}}
    return Tool(name=str(spec.get("name", "")), description=spec.get("description"), parameters=parameters)


def _choice_in(value: Any) -> ToolChoice | None:
    if not isinstance(value, dict):
        return None
    if "any" in value:
        return ToolChoice(mode="required")
    if "tool" in value:
        return ToolChoice(mode="tool", name=str(_dict(value["tool"]).get("name", "")))
    return ToolChoice(mode="auto")


def write_response(response: ChatResponse) -> bytes:
    content: list[dict[str, Any]] = []
    for part in response.parts:
        if isinstance(part, ThinkingPart):
            reasoning: dict[str, Any] = {"text": part.text}
            if part.signature:
                reasoning["signature"] = part.signature
            content.append({"reasoningContent": {"reasoningText": reasoning}})
        elif part.text:
            content.append({"text": part.text})
    content += [
        {"toolUse": {"toolUseId": c.id, "name": c.name, "input": _object(c.arguments)}} for c in response.tool_calls
    ]
    stop = "stop_sequence" if response.stop_sequence else STOP_REASONS.get(response.finish, "end_turn")
    return _encode(
        {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": usage_out(response.usage),
            "metrics": {"latencyMs": 0},
        }
    )
