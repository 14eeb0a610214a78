"""OpenAI chat completions ↔ the canonical model: requests and answers, both directions (streams: `stream`).

Used only when the client's format and the provider's differ; OpenAI-in, OpenAI-out forwards bytes.
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

__all__ = ["FINISH_IN", "read_request", "read_response", "read_usage", "usage_out", "write_request", "write_response"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_KNOWN = {
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "stop", "stream", "stream_options", "response_format", "reasoning_effort", "user",
    "fallbacks", "models", "route", "functions", "function_call",
}  # fmt: skip
FINISH_IN: dict[str, Finish] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


# -- requests -----------------------------------------------------------------------------------------


def read_request(body: dict[str, Any]) -> ChatRequest:
    system: list[TextPart] = []
    messages: list[Message] = []
    for i, raw in enumerate(body.get("messages") or []):
        if not isinstance(raw, dict):
            raise BadRequest(f"messages[{i}] must be an object.", param=f"messages[{i}]")
        role = raw.get("role")
        if role in ("system", "developer"):
            system.extend(p for p in _parts(raw.get("content"), i) if isinstance(p, TextPart))
        elif role == "tool":
            content = [p for p in _parts(raw.get("content"), i) if isinstance(p, TextPart | ImagePart)]
            result = ToolResultPart(tool_call_id=str(raw.get("tool_call_id", "")), content=content)
            messages.append(Message(role="tool", parts=[result]))
        elif role in ("user", "assistant"):
            messages.append(Message(role=role, parts=_parts(raw.get("content"), i), tool_calls=_calls(raw)))
        else:
            raise BadRequest(f"messages[{i}].role {role!r} is not supported.", param=f"messages[{i}].role")
    fmt = _dict(body.get("response_format"))
    kind = fmt.get("type")
    stop = body.get("stop")
    options = _dict(body.get("stream_options"))
    return ChatRequest(
        model=str(body.get("model", "")),
        messages=messages,
        system=system,
        tools=[_tool(t) for t in body.get("tools") or [] if isinstance(t, dict)],
        tool_choice=_choice(body.get("tool_choice"), body.get("parallel_tool_calls")),
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=[stop] if isinstance(stop, str) else list(stop or []),
        stream=body.get("stream") is True,
        include_usage=bool(options.get("include_usage")),
        json_mode="schema" if kind == "json_schema" else "object" if kind == "json_object" else None,
        json_schema=fmt.get("json_schema") if kind == "json_schema" else None,
        reasoning_effort=body.get("reasoning_effort"),
        user=body.get("user"),
        extras={k: v for k, v in body.items() if k not in _KNOWN},
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _parts(content: Any, index: int) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(text=content)]
    if not isinstance(content, list):
        raise BadRequest(f"messages[{index}].content must be a string or an array.", param=f"messages[{index}]")
    parts: list[Part] = []
    for item in content:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text":
            parts.append(TextPart(text=str(item.get("text", ""))))
        elif kind == "image_url":
            url = (item.get("image_url") or {}).get("url", "")
            parts.append(image_from_url(str(url)))
        elif kind == "refusal":
            parts.append(TextPart(text=str(item.get("refusal", ""))))
    return parts


def image_from_url(url: str) -> ImagePart:
    if url.startswith("data:") and ";base64," in url:
        head, _, data = url.partition(";base64,")
        return ImagePart(data=data, media_type=head[5:] or "image/png")
    return ImagePart(url=url)


def _calls(raw: dict[str, Any]) -> list[ToolCall]:
    calls = []
    for call in raw.get("tool_calls") or []:
        function = call.get("function") or {}
        calls.append(
            ToolCall(id=str(call.get("id", "")), name=str(function.get("name", "")), arguments=_args(function))
        )
    return calls


def _args(function: dict[str, Any]) -> str:
    arguments = function.get("arguments", "{}")
    return arguments if isinstance(arguments, str) else _encode(arguments).decode()


def _tool(raw: dict[str, Any]) -> Tool:
    function = raw.get("function") or {}
    params = function.get("parameters") or {"type": "object", "properties": {}}
    return Tool(name=str(function.get("name", "")), description=function.get("description"), parameters=params)


def _choice(value: Any, parallel: Any) -> ToolChoice | None:
    flag = parallel if isinstance(parallel, bool) else None
    if value is None:
        return ToolChoice(parallel=flag) if flag is not None else None
    if value in ("auto", "none", "required"):
        return ToolChoice(mode=value, parallel=flag)
    if isinstance(value, dict):
        name = (value.get("function") or {}).get("name")
        return ToolChoice(mode="tool", name=name, parallel=flag)
    return None


def write_request(req: ChatRequest) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": "\n\n".join(p.text for p in req.system)})
    for message in req.messages:
        messages.extend(_message_out(message))
    body: dict[str, Any] = {"model": req.model, "messages": messages}
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": _drop_none(name=t.name, description=t.description, parameters=t.parameters),
            }
            for t in req.tools
        ]
    _choice_out(body, req.tool_choice)
    sampling = (("max_tokens", req.max_tokens), ("temperature", req.temperature), ("top_p", req.top_p))
    body.update({k: v for k, v in sampling if v is not None})
    if req.stop:
        body["stop"] = req.stop
    if req.json_mode == "object":
        body["response_format"] = {"type": "json_object"}
    elif req.json_mode == "schema" and req.json_schema:
        body["response_format"] = {"type": "json_schema", "json_schema": req.json_schema}
    if req.reasoning_effort:
        body["reasoning_effort"] = req.reasoning_effort
    if req.user:
        body["user"] = req.user
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # the client's format may need usage at the end
    return body


def _message_out(message: Message) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    rest: list[Part] = []
    for part in message.parts:
        if isinstance(part, ToolResultPart):  # each result is its own `tool` message, before any text
            text = "".join(p.text for p in part.content if isinstance(p, TextPart))
            out.append({"role": "tool", "tool_call_id": part.tool_call_id, "content": text})
        elif not isinstance(part, ThinkingPart):  # other providers cannot take back Anthropic's thinking
            rest.append(part)
    if message.role == "assistant":
        item: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(p.text for p in rest if isinstance(p, TextPart)),
        }
        if message.tool_calls:
            item["content"] = item["content"] or None
            item["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in message.tool_calls
            ]
        out.append(item)
    elif rest:
        out.append({"role": "user", "content": _content_out(rest)})
    return out


def _content_out(parts: list[Part]) -> str | list[dict[str, Any]]:
    if all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts if isinstance(p, TextPart))
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            out.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            out.append({"type": "image_url", "image_url": {"url": part.data_url}})
    return out


def _choice_out(body: dict[str, Any], choice: ToolChoice | None) -> None:
    if choice is None:
        return
    if choice.mode == "tool":
        body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    elif choice.mode != "auto" or body.get("tools"):
        body["tool_choice"] = choice.mode
    if choice.parallel is not None and body.get("tools"):
        body["parallel_tool_calls"] = choice.parallel


def _drop_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# -- answers ------------------------------------------------------------------------------------------


def read_response(raw: bytes) -> ChatResponse:
    data = _decode(raw)
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    parts: list[TextPart | ThinkingPart] = []
    thinking = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(thinking, str) and thinking:
        parts.append(ThinkingPart(text=thinking))
    if isinstance(message.get("content"), str) and message["content"]:
        parts.append(TextPart(text=message["content"]))
    return ChatResponse(
        id=str(data.get("id", "")),
        model=str(data.get("model", "")),
        parts=parts,
        tool_calls=_calls(message),
        finish=FINISH_IN.get(str(choice.get("finish_reason")), "stop"),
        usage=read_usage(data.get("usage")),
        created=int(data.get("created") or time.time()),
    )


def read_usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    return Usage(
        input=int(usage.get("prompt_tokens") or 0),
        output=int(usage.get("completion_tokens") or 0),
        cached=int(prompt.get("cached_tokens") or 0),
        reasoning=int(completion.get("reasoning_tokens") or 0),
    )


def usage_out(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output,
    }
    if usage.cached:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached}
    if usage.reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning}
    return out


def write_response(resp: ChatResponse) -> bytes:
    text = "".join(p.text for p in resp.parts if isinstance(p, TextPart))
    thinking = "".join(p.text for p in resp.parts if isinstance(p, ThinkingPart))
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if thinking:
        message["reasoning_content"] = thinking
    if resp.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in resp.tool_calls
        ]
    elif message["content"] is None:
        message["content"] = ""
    finish = "stop" if resp.finish == "error" else resp.finish
    body = {
        "id": resp.id if resp.id.startswith("chatcmpl") else f"chatcmpl-{resp.id}",
        "object": "chat.completion",
        "created": resp.created or int(time.time()),
        "model": resp.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage_out(resp.usage),
    }
    return _encode(body)
