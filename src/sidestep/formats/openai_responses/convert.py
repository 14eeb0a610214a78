"""Responses API requests and answers ↔ the canonical model (streams: `stream`).

A request is checked whole here, once, when the gateway parses it (`format.parse_body`): every item of
`input`, every tool, `text.format`. What the canonical model cannot carry — state stored at the provider
(`previous_response_id`, `conversation`, `item_reference`) and the tools only OpenAI hosts (`web_search`,
`file_search`, `computer_use_preview` …, and the items they produce) — is never dropped: such a request needs a
target that speaks the Responses API (`needs_of`: capability `responses`), which gets it passed through, and
translating it is refused with a 400 naming what it uses.
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
    "needs_of",
    "read_request",
    "read_response",
    "read_usage",
    "response_object",
    "usage_out",
    "write_request",
]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_KNOWN = {
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
    "temperature", "top_p", "stream", "text", "reasoning", "user", "safety_identifier", "store", "metadata",
    "fallbacks", "models", "route", "messages", "previous_response_id", "conversation", "include", "stream_options",
    "background",
}  # fmt: skip
_NO_STORAGE = (
    "'{}' refers to state stored at the provider: only a target that speaks the Responses API (openai, azure) can"
    " serve it, and sidestep does not store responses itself; send the whole conversation in 'input' otherwise."
)
_HOSTED = "is a built-in tool hosted by OpenAI: only a target that speaks the Responses API (openai, azure) can run it"
# Items only the Responses API carries: what hosted tools produce (sent back in `input` on the next turn), and
# references to stored ones. A message, a function call or its output translates to any target.
_NATIVE_ITEMS = frozenset({
    "item_reference", "web_search_call", "file_search_call", "computer_call", "computer_call_output",
    "code_interpreter_call", "image_generation_call", "local_shell_call", "local_shell_call_output",
    "shell_call", "shell_call_output", "apply_patch_call", "apply_patch_call_output", "mcp_list_tools",
    "mcp_approval_request", "mcp_approval_response", "mcp_call", "custom_tool_call", "custom_tool_call_output",
})  # fmt: skip
_STATE = ("previous_response_id", "conversation")
_MAX_ID = 256
MAX_TOOLS = 128  # as OpenAI allows
_RESPONSES = frozenset({"responses"})
_NONE: frozenset[str] = frozenset()
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


# -- requests -----------------------------------------------------------------------------------------


def needs_of(body: dict[str, Any]) -> frozenset[str]:
    """`{"responses"}` when the request uses what only the Responses API carries (provider-stored state, a
    hosted tool, the items hosted tools produce), else nothing. Shapes are not checked here (`read_request`)."""
    if any(body.get(name) is not None for name in _STATE) or body.get("background") is True:
        return _RESPONSES  # state at the provider: a background response is polled there too
    tools = body.get("tools")
    if isinstance(tools, list) and any(isinstance(t, dict) and t.get("type") != "function" for t in tools):
        return _RESPONSES
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") not in ("function", None):
        return _RESPONSES
    items = body.get("input")
    if isinstance(items, list) and any(isinstance(i, dict) and i.get("type") in _NATIVE_ITEMS for i in items):
        return _RESPONSES
    return _NONE


def read_request(body: dict[str, Any], native: bool = False) -> ChatRequest:
    """The canonical request. `native`: the request is only checked (it goes to a target speaking Responses,
    as it is), so what only the Responses API carries is let through instead of refused."""
    for name in _STATE:
        if body.get(name) is not None and not native:
            raise BadRequest(_NO_STORAGE.format(name), param=name, code="storage_unavailable")
    _state_ids(body)
    system: list[TextPart] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        system.append(TextPart(text=instructions))
    elif instructions is not None:
        raise BadRequest("'instructions' must be a string.", param="instructions")
    messages = _input(body.get("input"), system, native)
    text = _object(body.get("text"), "text")
    reasoning = _object(body.get("reasoning"), "reasoning")
    mode, schema = _text_format(_object(text.get("format"), "text.format"))
    user = body.get("user") or body.get("safety_identifier")
    return ChatRequest(
        model=str(body.get("model", "")),
        messages=messages,
        system=system,
        tools=[tool for i, t in enumerate(_tools(body.get("tools"))) if (tool := _tool(t, i, native))],
        tool_choice=_choice(body.get("tool_choice"), body.get("parallel_tool_calls"), native),
        max_tokens=_number(body, "max_output_tokens", int),
        temperature=_number(body, "temperature", float),
        top_p=_number(body, "top_p", float),
        stream=body.get("stream") is True,
        include_usage=True,  # a Responses stream always ends with its usage
        json_mode=mode,
        json_schema=schema,
        reasoning_effort=reasoning.get("effort") if isinstance(reasoning.get("effort"), str) else None,
        user=user if isinstance(user, str) else None,
        extras={k: v for k, v in body.items() if k not in _KNOWN},
    )


def _state_ids(body: dict[str, Any]) -> None:
    """`previous_response_id` (and a `conversation` id) are passed on as they are: a short printable string."""
    previous = body.get("previous_response_id")
    conversation = body.get("conversation")
    conversation = conversation.get("id") if isinstance(conversation, dict) else conversation
    for name, value in (("previous_response_id", previous), ("conversation", conversation)):
        if value is None:
            continue
        if not isinstance(value, str) or not value or len(value) > _MAX_ID or not value.isprintable():
            raise BadRequest(f"'{name}' must be an id: a printable string of at most {_MAX_ID} characters.", param=name)


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"'{name}' must be an object.", param=name)
    return value


def _tools(value: Any) -> list[Any]:
    tools = _list(value, "tools")
    if len(tools) > MAX_TOOLS:
        raise BadRequest(f"'tools' may hold at most {MAX_TOOLS} tools; it has {len(tools)}.", param="tools")
    return tools


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"'{name}' must be an array.", param=name)
    return value


def _number(body: dict[str, Any], name: str, kind: type[int] | type[float]) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int if kind is int else (int, float)):
        raise BadRequest(f"'{name}' must be a number{' (an integer)' if kind is int else ''}.", param=name)
    return value


def _input(value: Any, system: list[TextPart], native: bool = False) -> list[Message]:
    if isinstance(value, str):
        return [Message(role="user", parts=[TextPart(text=value)])]
    if not isinstance(value, list) or not value:
        raise BadRequest("'input' is required: a string or a non-empty array of items.", param="input")
    messages: list[Message] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object.", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            role = _ROLES.get(item.get("role"))  # type: ignore[arg-type]
            if role is None:
                raise BadRequest(f"{where}.role must be one of user, assistant, system, developer.", param=where)
            parts = _content(item.get("content"), where)
            if role == "system":
                system.extend(p for p in parts if isinstance(p, TextPart))
            else:
                messages.append(Message(role=role, parts=parts))  # type: ignore[arg-type]
        elif kind == "function_call":
            call = ToolCall(id=_str(item, "call_id", where), name=_str(item, "name", where), arguments=_args(item))
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":  # parallel calls: one assistant turn
                last.tool_calls.append(call)
            else:
                messages.append(Message(role="assistant", tool_calls=[call]))
        elif kind == "function_call_output":
            result = ToolResultPart(tool_call_id=_str(item, "call_id", where), content=_output(item, where))
            messages.append(Message(role="tool", parts=[result]))
        elif kind == "reasoning":
            continue  # a previous turn's reasoning: no target of another format can take it back
        elif kind in _NATIVE_ITEMS:
            if native:
                continue  # passed through as it is: the target that speaks Responses reads it
            if kind == "item_reference":
                raise BadRequest(
                    _NO_STORAGE.format(f"{where}: item_reference"), param=where, code="storage_unavailable"
                )
            raise BadRequest(f"{where}.type {kind!r} {_HOSTED}.", param=where)
        else:
            raise BadRequest(f"{where}.type {kind!r} is not supported by sidestep.", param=where)
    return messages


def _str(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{where}.{name} is required and must be a non-empty string.", param=f"{where}.{name}")
    return value


def _args(item: dict[str, Any]) -> str:
    arguments = item.get("arguments", "{}")
    return arguments if isinstance(arguments, str) else _encode(arguments).decode()


def _content(content: Any, where: str) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(text=content)]
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content must be a string or an array.", param=f"{where}.content")
    parts: list[Part] = []
    for j, part in enumerate(content):
        here = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(part, dict):
            raise BadRequest(f"{here} must be an object.", param=here)
        if kind in ("input_text", "output_text"):
            if not isinstance(part.get("text"), str):
                raise BadRequest(f"{here}.text must be a string.", param=here)
            parts.append(TextPart(text=part["text"]))
        elif kind == "refusal":
            parts.append(TextPart(text=str(part.get("refusal", ""))))
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append(_image(part["image_url"]))
        else:
            raise BadRequest(f"{here}: content of type {kind!r} is not supported by sidestep.", param=here)
    return parts


def _image(url: str) -> ImagePart:
    if url.startswith("data:") and ";base64," in url:
        head, _, data = url.partition(";base64,")
        return ImagePart(data=data, media_type=head[5:] or "image/png")
    return ImagePart(url=url)


def _output(item: dict[str, Any], where: str) -> list[TextPart | ImagePart]:
    output = item.get("output")
    if isinstance(output, str):
        return [TextPart(text=output)]
    return [p for p in _content(output, f"{where}.output") if isinstance(p, TextPart | ImagePart)]


def _tool(raw: Any, index: int, native: bool = False) -> Tool | None:
    where = f"tools[{index}]"
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be an object.", param=where)
    kind = raw.get("type")
    if kind != "function":
        if native and isinstance(kind, str) and kind:
            return None  # a hosted tool: passed through as it is
        raise BadRequest(f"{where}: {kind!r} {_HOSTED}; other targets take only function tools.", param=where)
    params = raw.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(params, dict):
        raise BadRequest(f"{where}.parameters must be an object (a JSON schema).", param=where)
    description = raw.get("description")
    return Tool(
        name=_str(raw, "name", where),
        description=description if isinstance(description, str) else None,
        parameters=params,
    )


def _choice(value: Any, parallel: Any, native: bool = False) -> ToolChoice | None:
    flag = parallel if isinstance(parallel, bool) else None
    if value is None:
        return ToolChoice(parallel=flag) if flag is not None else None
    if value in ("auto", "none", "required"):
        return ToolChoice(mode=value, parallel=flag)
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("name"), str):
        return ToolChoice(mode="tool", name=value["name"], parallel=flag)
    kind = value.get("type") if isinstance(value, dict) else value
    if native and isinstance(kind, str):
        return None  # a hosted tool (or allowed_tools): passed through as it is
    raise BadRequest(
        f"'tool_choice' {kind!r} is not supported: use auto, none, required or a function.", param="tool_choice"
    )


def _text_format(fmt: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    kind = fmt.get("type")
    if kind in (None, "text"):
        return None, None
    if kind == "json_object":
        return "object", None
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise BadRequest("'text.format.schema' must be an object (a JSON schema).", param="text.format.schema")
        named = {"name": str(fmt.get("name") or "response"), "schema": schema}
        if isinstance(fmt.get("strict"), bool):
            named["strict"] = fmt["strict"]
        return "schema", named
    raise BadRequest(f"'text.format.type' {kind!r} is not supported.", param="text.format.type")


def write_request(req: ChatRequest) -> dict[str, Any]:
    """The canonical request as a Responses body (for a provider speaking Responses, and round trips)."""
    items: list[dict[str, Any]] = []
    for message in req.messages:
        for part in message.parts:
            if isinstance(part, ToolResultPart):
                text = "".join(p.text for p in part.content if isinstance(p, TextPart))
                items.append({"type": "function_call_output", "call_id": part.tool_call_id, "output": text})
        if message.text:
            items.append({"type": "message", "role": message.role, "content": message.text})
        items.extend(
            {"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments}
            for c in message.tool_calls
        )
    body: dict[str, Any] = {"model": req.model, "input": items}
    if req.system:
        body["instructions"] = "\n\n".join(p.text for p in req.system)
    if req.tools:
        body["tools"] = [
            {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}
            for t in req.tools
        ]
    sampling = (("max_output_tokens", req.max_tokens), ("temperature", req.temperature), ("top_p", req.top_p))
    body.update({k: v for k, v in sampling if v is not None})
    if req.json_mode == "schema" and req.json_schema:
        body["text"] = {"format": {"type": "json_schema", **req.json_schema}}
    elif req.json_mode == "object":
        body["text"] = {"format": {"type": "json_object"}}
    if req.stream:
        body["stream"] = True
    return body


# -- answers ------------------------------------------------------------------------------------------


def response_object(resp: ChatResponse, status: str = "completed") -> dict[str, Any]:
    """A `Response` as the SDK's `openai.types.responses.Response` reads it."""
    output: list[dict[str, Any]] = []
    thinking = "".join(p.text for p in resp.parts if isinstance(p, ThinkingPart))
    if thinking:
        summary = [{"type": "summary_text", "text": thinking}]
        output.append({"type": "reasoning", "id": f"rs_{resp.id}", "summary": summary})
    text = "".join(p.text for p in resp.parts if isinstance(p, TextPart))
    if text or not resp.tool_calls:
        output.append(message_item(f"msg_{resp.id}", text, "completed"))
    output.extend(call_item(f"fc_{c.id}", c.id, c.name, c.arguments, "completed") for c in resp.tool_calls)
    incomplete = _INCOMPLETE.get(resp.finish)
    return {
        "id": resp.id if resp.id.startswith("resp_") else f"resp_{resp.id}",
        "object": "response",
        "created_at": resp.created or int(time.time()),
        "status": "incomplete" if incomplete and status == "completed" else status,
        "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "model": resp.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage_out(resp.usage),
    }


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    """A message item; `text` None: the opening of a streamed one, its content part not added yet."""
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def usage_out(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input,
        "input_tokens_details": {"cached_tokens": usage.cached, "cache_write_tokens": usage.cache_write},
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": usage.input + usage.output,
    }


def read_usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    inputs = usage.get("input_tokens_details") or {}
    outputs = usage.get("output_tokens_details") or {}
    return Usage(
        input=int(usage.get("input_tokens") or 0),
        output=int(usage.get("output_tokens") or 0),
        cached=int(inputs.get("cached_tokens") or 0),
        reasoning=int(outputs.get("reasoning_tokens") or 0),
    )


def read_response(raw: bytes) -> ChatResponse:
    return response_of(_decode(raw))


def response_of(data: dict[str, Any]) -> ChatResponse:
    parts: list[TextPart | ThinkingPart] = []
    calls: list[ToolCall] = []
    for item in data.get("output") or []:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            text = "".join(c.get("text", "") for c in item.get("content") or [] if isinstance(c, dict))
            parts.append(TextPart(text=text))
        elif kind == "reasoning":
            text = "".join(s.get("text", "") for s in item.get("summary") or [] if isinstance(s, dict))
            parts.append(ThinkingPart(text=text))
        elif kind == "function_call":
            calls.append(ToolCall(id=str(item.get("call_id")), name=str(item.get("name")), arguments=_args(item)))
    reason = (data.get("incomplete_details") or {}).get("reason")
    finish: Finish = "tool_calls" if calls else "length" if reason == "max_output_tokens" else "stop"
    return ChatResponse(
        id=str(data.get("id", "")),
        model=str(data.get("model", "")),
        parts=parts,
        tool_calls=calls,
        finish="content_filter" if reason == "content_filter" else finish,
        usage=read_usage(data.get("usage")),
        created=int(data.get("created_at") or time.time()),
    )
