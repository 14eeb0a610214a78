"""Gemini's `generateContent` ↔ the canonical model, client side: what a Gemini client (google-genai) sends,
read into a `ChatRequest`, and the answer written back as a `GenerateContentResponse`. Used only when the
target speaks another format; a Gemini client served by a Gemini target gets the upstream's bytes.

Function calls in a Gemini conversation usually carry no ids: a call without one is named `call_<n>` (n
counting the conversation's calls) and a function response without one answers the oldest unanswered call
of its name. Schemas in Gemini's OpenAPI dialect (`"type": "OBJECT"`, `nullable`) become JSON Schema.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

import msgspec

from sidestep.core.model import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    Part,
    Role,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResultPart,
    Usage,
)
from sidestep.errors import BadRequest

__all__ = ["FINISH_OUT", "read_request", "usage_out", "write_response"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_ROLES: dict[str, Role] = {"user": "user", "model": "assistant", "function": "user", "tool": "user"}
FINISH_OUT = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
    "error": "OTHER",
}
_KNOWN = {
    "contents", "systemInstruction", "system_instruction", "tools", "toolConfig", "tool_config",
    "generationConfig", "generation_config", "stream", "model", "messages",
}  # fmt: skip
_MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}
# Fields of Gemini's Schema that JSON Schema spells the same way; the rest are dropped on translation.
_SCHEMA_KEYS = {
    "type", "format", "description", "enum", "properties", "required", "items", "minItems", "maxItems",
    "minimum", "maximum", "anyOf", "title", "minLength", "maxLength", "pattern", "default", "example",
    "minProperties", "maxProperties",
}  # fmt: skip


# -- requests ------------------------------------------------------------------------------------------


def read_request(body: dict[str, Any]) -> ChatRequest:
    """A Gemini request (its body as JSON values) as the canonical request; a part the canonical model cannot
    carry (audio, code execution …) is a 400 naming it, never dropped silently."""
    config = _dict(_either(body, "generationConfig", "generation_config"))
    thinking = _dict(_either(config, "thinkingConfig", "thinking_config"))
    request = ChatRequest(
        model=str(body.get("model", "")),
        messages=_messages(body.get("contents")) + _continued(body.get("messages")),
        system=_system(_either(body, "systemInstruction", "system_instruction")),
        tools=_tools(body.get("tools")),
        tool_choice=_choice(_either(body, "toolConfig", "tool_config")),
        max_tokens=_int(config, "maxOutputTokens"),
        temperature=_number(config, "temperature"),
        top_p=_number(config, "topP"),
        top_k=_int(config, "topK"),
        stop=[s for s in config.get("stopSequences") or [] if isinstance(s, str)],
        stream=body.get("stream") is True,  # set by the gateway from the path (`streamGenerateContent`)
        include_usage=True,
        thinking_budget=_int(thinking, "thinkingBudget") or None,
        extras={k: v for k, v in body.items() if k not in _KNOWN},
    )
    if config.get("responseMimeType") == "application/json":
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        request.json_mode = "schema" if isinstance(schema, dict) else "object"
        if isinstance(schema, dict):
            request.json_schema = {"name": "response", "schema": json_schema(schema)}
    return request


def _either(body: dict[str, Any], camel: str, snake: str) -> Any:
    """The REST API takes both spellings of a field (proto JSON); clients send camelCase."""
    return body.get(camel) if camel in body else body.get(snake)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(config: dict[str, Any], name: str) -> int | None:
    value = config.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(config: dict[str, Any], name: str) -> float | None:
    value = config.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _system(value: Any) -> list[TextPart]:
    if isinstance(value, str):
        return [TextPart(text=value)]
    parts = _dict(value).get("parts") or []
    return [TextPart(text=p["text"]) for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _messages(contents: Any) -> list[Message]:
    messages: list[Message] = []
    pending: defaultdict[str, deque[str]] = defaultdict(deque)  # function name → ids of calls not yet answered
    calls = 0
    for index, content in enumerate(contents if isinstance(contents, list) else []):
        content = _dict(content)
        role = _ROLES.get(str(content.get("role") or "user"))
        if role is None:
            raise BadRequest(f"contents[{index}].role: use 'user' or 'model'.", param=f"contents[{index}].role")
        message = Message(role=role)
        for number, part in enumerate(content.get("parts") or []):
            where = f"contents[{index}].parts[{number}]"
            if isinstance(part, dict) and isinstance(part.get("functionCall"), dict):
                call = part["functionCall"]
                ident = str(call.get("id") or f"call_{calls}")
                calls += 1
                name = str(call.get("name", ""))
                pending[name].append(ident)
                message.tool_calls.append(
                    ToolCall(id=ident, name=name, arguments=_encode(call.get("args") or {}).decode())
                )
            elif isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
                message.parts.append(_result(part["functionResponse"], pending))
            else:
                read = _part(part, where)
                if read is not None:
                    message.parts.append(read)
        if message.parts or message.tool_calls:
            messages.append(message)
    return messages


def _continued(messages: Any) -> list[Message]:
    """The turns the gateway adds to continue a broken stream (`mid_stream: continue`, in OpenAI's shape:
    the text already sent, then the ask to go on); clients may not send `messages`."""
    turns = messages if isinstance(messages, list) else []
    return [
        Message(role="assistant" if m.get("role") == "assistant" else "user", parts=[TextPart(text=m["content"])])
        for m in turns
        if isinstance(m, dict) and isinstance(m.get("content"), str)
    ]


def _result(response: dict[str, Any], pending: defaultdict[str, deque[str]]) -> ToolResultPart:
    name = str(response.get("name", ""))
    waiting = pending[name]
    ident = str(response.get("id") or (waiting[0] if waiting else f"call_{name}"))
    if ident in waiting:
        waiting.remove(ident)
    value = response.get("response")
    error = isinstance(value, dict) and "error" in value and len(value) == 1
    if isinstance(value, dict) and len(value) == 1:
        only = next(iter(value.values()))
        value = only if isinstance(only, str) else value
    text = value if isinstance(value, str) else _encode(value if value is not None else {}).decode()
    return ToolResultPart(tool_call_id=ident, content=[TextPart(text=text)], is_error=error)


def _part(part: Any, where: str) -> Part | None:
    if not isinstance(part, dict):
        raise BadRequest(f"{where}: a part must be an object.", param=where)
    if isinstance(part.get("text"), str):
        return None if part.get("thought") else TextPart(text=part["text"])  # thoughts are not sent back
    for key in ("inlineData", "inline_data", "fileData", "file_data"):
        blob = part.get(key)
        if isinstance(blob, dict):
            mime = str(blob.get("mimeType") or blob.get("mime_type") or "")
            if not mime.startswith("image/"):
                raise BadRequest(f"{where}: {mime or 'untyped'} data can only be sent to Gemini targets.", param=where)
            if key.startswith("inline"):
                return ImagePart(data=str(blob.get("data", "")), media_type=mime)
            return ImagePart(url=str(blob.get("fileUri") or blob.get("file_uri") or ""), media_type=mime)
    if "thoughtSignature" in part and len(part) == 1:
        return None
    kinds = ", ".join(sorted(k for k in part if k != "thoughtSignature")) or "an empty part"
    raise BadRequest(f"{where}: {kinds} can only be sent to Gemini targets.", param=where)


def _tools(value: Any) -> list[Tool]:
    tools: list[Tool] = []
    for tool in value if isinstance(value, list) else []:
        tool = _dict(tool)
        declarations = _either(tool, "functionDeclarations", "function_declarations")
        if not declarations and tool:
            kinds = ", ".join(sorted(tool))
            raise BadRequest(f"tools: {kinds} can only be used with Gemini targets.", param="tools")
        for declaration in declarations or []:
            declaration = _dict(declaration)
            schema = declaration.get("parametersJsonSchema")
            if not isinstance(schema, dict):
                raw = declaration.get("parameters")
                schema = json_schema(raw) if isinstance(raw, dict) else {"type": "object", "properties": {}}
            description = declaration.get("description")
            tools.append(
                Tool(
                    name=str(declaration.get("name", "")),
                    description=description if isinstance(description, str) else None,
                    parameters=schema,
                )
            )
    return tools


def json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-style Schema as JSON Schema: lower-case types, `nullable` as a null type."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: json_schema(item) for name, item in value.items()}
        else:
            out[key] = json_schema(value) if key in ("items", "anyOf") else value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _choice(value: Any) -> ToolChoice | None:
    config = _dict(_either(_dict(value), "functionCallingConfig", "function_calling_config"))
    if not config:
        return None
    mode = _MODES.get(str(config.get("mode") or "AUTO").upper(), "auto")
    allowed = config.get("allowedFunctionNames") or []
    if mode == "required" and isinstance(allowed, list) and len(allowed) == 1 and isinstance(allowed[0], str):
        return ToolChoice(mode="tool", name=allowed[0])
    return ToolChoice(mode=mode)  # type: ignore[arg-type]


# -- answers -------------------------------------------------------------------------------------------


def write_response(response: ChatResponse) -> bytes:
    parts: list[dict[str, Any]] = []
    for part in response.parts:
        if isinstance(part, ThinkingPart):
            parts.append({"text": part.text, "thought": True})
        elif part.text:
            parts.append({"text": part.text})
    parts.extend(function_call(call) for call in response.tool_calls)
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    candidate["finishReason"] = FINISH_OUT.get(response.finish, "STOP")
    candidate["index"] = 0
    return _encode(
        {
            "candidates": [candidate],
            "usageMetadata": usage_out(response.usage),
            "modelVersion": response.model,
            "responseId": response.id,
        }
    )


def function_call(call: ToolCall) -> dict[str, Any]:
    try:
        args = _decode(call.arguments) if call.arguments else {}
    except msgspec.DecodeError:
        args = {}
    return {"functionCall": {"id": call.id, "name": call.name, "args": args if isinstance(args, dict) else {}}}


def usage_out(usage: Usage) -> dict[str, int]:
    """Canonical usage as `usageMetadata`: the answer's tokens without the thoughts, which are counted apart."""
    answer = max(0, usage.output - usage.reasoning)
    meta = {
        "promptTokenCount": usage.input,
        "candidatesTokenCount": answer,
        "totalTokenCount": usage.input + usage.output,
    }
    if usage.reasoning:
        meta["thoughtsTokenCount"] = usage.reasoning
    if usage.cached:
        meta["cachedContentTokenCount"] = usage.cached
    return meta
