"""OpenAI's Responses API as the simulator speaks it (`POST /v1/responses`, Azure's `/openai/v1/responses`): a
`response` object, or its SSE event sequence (`response.created` … `response.completed`).

The reply is planned as for chat (`sim.openai.plan_reply`, on the input read as messages): an echo of the last
user words, a function call (the first tool, the one `tool_choice` names, or `tool_call=NAME` in the last user
message), an echo of a tool's result once it comes back. A hosted `web_search` tool "runs" here: a
`web_search_call` item comes before the message, so a test can tell the tool reached a target that hosts it.
Responses are remembered (ids only, bounded) so that `previous_response_id` is refused, as OpenAI does, when
it names one this simulator never made.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgspec

from sidestep.sim.openai import Reply, plan_reply

__all__ = ["MALFORMED_BODY", "MALFORMED_EVENT", "events", "problem", "response", "stream_error"]

_encode = msgspec.json.Encoder().encode
MALFORMED_BODY = b'{"id": "resp_broken", "object": "response", "output": ['
MALFORMED_EVENT = b"event: response.output_text.delta\ndata: {not json\n\n"
_ROLES = {"user", "assistant", "system", "developer"}


def problem(body: dict[str, Any]) -> str | None:
    """What OpenAI would refuse with a 400 (the checks the simulator makes), or None."""
    items = body.get("input")
    if not isinstance(items, str | list) or (isinstance(items, list) and not items):
        return "Missing required parameter: 'input'."
    if "messages" in body:
        return "Unknown parameter: 'messages'."
    return None


def _text(content: Any) -> Any:
    if isinstance(content, list):
        return [{"type": "text", "text": str(p.get("text", ""))} for p in content if isinstance(p, dict)]
    return content


def as_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The request read as a chat body, so the chat planner answers it."""
    items = body.get("input")
    messages: list[dict[str, Any]] = []
    for item in [{"role": "user", "content": items}] if isinstance(items, str) else items or []:
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind == "message" and item.get("role") in _ROLES:
            messages.append({"role": item["role"], "content": _text(item.get("content"))})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": item.get("call_id")}]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "content": str(item.get("output", ""))})
    tools = [
        {"type": "function", "function": {"name": t.get("name"), "parameters": t.get("parameters") or {}}}
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("type") == "function"
    ]
    chat: dict[str, Any] = {"messages": messages, "max_tokens": body.get("max_output_tokens")}
    if tools:
        chat["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif isinstance(choice, str):
        chat["tool_choice"] = choice
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": {"schema": fmt.get("schema") or {}}}
    return chat


def plan(body: dict[str, Any], name: str) -> Reply:
    return plan_reply(as_chat(body), name)


def _searches(body: dict[str, Any]) -> bool:
    tools = body.get("tools") or []
    return any(isinstance(t, dict) and str(t.get("type", "")).startswith("web_search") for t in tools)


def _items(body: dict[str, Any], reply: Reply, ident: str) -> list[dict[str, Any]]:
    """The output items, done: a web search (when the tool was given), then the message or the function call."""
    items: list[dict[str, Any]] = []
    if _searches(body):
        action = {"type": "search", "query": "simulated search"}
        items.append({"type": "web_search_call", "id": f"ws_{ident}", "status": "completed", "action": action})
    if reply.tool is not None:
        call = reply.tool
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{ident}",
                "call_id": call["id"],
                "name": call["name"],
                "arguments": call["arguments"],
                "status": "completed",
            }
        )
    else:
        part = {"type": "output_text", "text": reply.text or "", "annotations": [], "logprobs": []}
        message = {"type": "message", "id": f"msg_{ident}", "status": "completed", "role": "assistant"}
        items.append({**message, "content": [part]})
    return items


def _usage(reply: Reply) -> dict[str, Any]:
    return {
        "input_tokens": reply.prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": reply.completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": reply.prompt + reply.completion,
    }


def _object(body: dict[str, Any], model: str, ident: str, status: str, created: int) -> dict[str, Any]:
    return {
        "id": f"resp_{ident}",
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None,
        "metadata": {},
    }


def _final(body: dict[str, Any], model: str, reply: Reply, ident: str, created: int) -> dict[str, Any]:
    answer = _object(body, model, ident, "completed", created)
    if reply.finish in ("length", "content_filter"):
        reason = "max_output_tokens" if reply.finish == "length" else "content_filter"
        answer.update(status="incomplete", incomplete_details={"reason": reason})
    answer.update(output=_items(body, reply, ident), usage=_usage(reply))
    return answer


def response(body: dict[str, Any], model: str, reply: Reply, ident: str) -> bytes:
    return _encode(_final(body, model, reply, ident, int(time.time())))


def _sse(payload: dict[str, Any]) -> bytes:
    return b"event: " + str(payload["type"]).encode() + b"\ndata: " + _encode(payload) + b"\n\n"


def events(body: dict[str, Any], model: str, reply: Reply, ident: str, pieces: int) -> tuple[list[bytes], int]:
    """Every event of the stream, in order, and the index of the first content event."""
    created = int(time.time())
    final = _final(body, model, reply, ident, created)
    out: list[dict[str, Any]] = []
    first = 0
    opening = _object(body, model, ident, "in_progress", created)
    out += [{"type": "response.created", "response": opening}, {"type": "response.in_progress", "response": opening}]
    for index, item in enumerate(final["output"]):
        started = _started(item)
        out.append({"type": "response.output_item.added", "output_index": index, "item": started})
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "function_call":
            first = first or len(out) - 1
            out += [
                {"type": "response.function_call_arguments.delta", **where, "delta": part}
                for part in _split(item["arguments"], pieces)
            ]
            out.append({"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]})
        elif item["type"] == "message":
            text = item["content"][0]["text"]
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out.append({"type": "response.content_part.added", **where, "content_index": 0, "part": empty})
            first = first or len(out)
            out += [
                {"type": "response.output_text.delta", **where, "content_index": 0, "delta": part, "logprobs": []}
                for part in _split_words(text, pieces)
            ]
            out.append({"type": "response.output_text.done", **where, "content_index": 0, "text": text, "logprobs": []})
            done_part = {"type": "response.content_part.done", **where, "content_index": 0}
            out.append({**done_part, "part": item["content"][0]})
        else:  # a hosted call: its own progress events
            out += [
                {"type": f"response.web_search_call.{s}", **where} for s in ("in_progress", "searching", "completed")
            ]
        out.append({"type": "response.output_item.done", "output_index": index, "item": item})
    kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    out.append({"type": kind, "response": final})
    return [_sse({**event, "sequence_number": n}) for n, event in enumerate(out)], first


def _started(item: dict[str, Any]) -> dict[str, Any]:
    if item["type"] == "message":
        return {**item, "status": "in_progress", "content": []}
    if item["type"] == "function_call":
        return {**item, "status": "in_progress", "arguments": ""}
    return {**item, "status": "in_progress"}


def stream_error(message: str | None) -> bytes:
    """The in-stream error OpenAI sends when a response fails after it started."""
    text = message or "The server had an error while processing your request."
    return _sse({"type": "error", "code": "server_error", "message": text, "param": None, "sequence_number": 0})


def _split_words(text: str, pieces: int) -> Iterator[str]:
    words = text.split(" ")
    size = max(1, -(-len(words) // max(1, pieces)))
    for i in range(0, len(words), size):
        yield (" " if i else "") + " ".join(words[i : i + size])


def _split(text: str, pieces: int) -> Iterator[str]:
    size = max(1, -(-len(text) // max(1, pieces)))
    for i in range(0, len(text), size):
        yield text[i : i + size]
