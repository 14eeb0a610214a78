"""Anthropic's Messages API as the simulator speaks it: messages, SSE events, token counts, errors.

Pure functions of the request (and the simulator's name), shaped so that the official `anthropic` SDK
validates them: `msg_` ids, content blocks (thinking with a signature, text, tool_use), stop reasons,
usage with cache counters, and the named-event stream (`event: message_start` … `event: message_stop`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from sidestep.sim.openai import _FILLER, _example, _split, _split_words

__all__ = [
    "MALFORMED_BODY",
    "MALFORMED_EVENT",
    "Reply",
    "count_tokens",
    "error_body",
    "invalid",
    "message",
    "plan_reply",
    "stream_error",
    "stream_events",
]

Safety = Literal["prompt", "output"] | None
_encode = msgspec.json.Encoder().encode

_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_MESSAGES = {
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of request tokens has exceeded your per-minute rate limit.",
    500: "Internal server error",
    529: "Overloaded",
}
MALFORMED_BODY = b'{"id": "msg_broken", "type": "message", "content": ['
MALFORMED_EVENT = b"event: content_block_delta\ndata: {not json\n\n"


def error_body(status: int, message: str | None = None) -> bytes:
    kind = _ERRORS.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    text = message or _MESSAGES.get(status) or f"Simulated error {status}."
    return _encode({"type": "error", "error": {"type": kind, "message": text}})


def stream_error(message: str | None = None) -> bytes:
    """The in-stream `event: error` Anthropic sends when it runs out of capacity mid-answer."""
    return _sse("error", msgspec.json.decode(error_body(529, message)))


def invalid(body: dict[str, Any], *, counting: bool = False) -> str | None:
    """The `invalid_request_error` message the real API would give for this body, or None."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("messages"), list):
        return "messages: Field required"
    if counting:
        return None
    limit = body.get("max_tokens")
    if limit is None:
        return "max_tokens: Field required"
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        return "max_tokens: Input should be a valid integer greater than or equal to 1"
    budget = _thinking_budget(body)
    if budget is not None and budget < 1024:
        return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
    if budget is not None and budget >= limit:
        return "`max_tokens` must be greater than `thinking.budget_tokens`."
    return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _thinking_budget(body: dict[str, Any]) -> int | None:
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    return budget if isinstance(budget, int) and not isinstance(budget, bool) else 0


def _text_of(content: Any) -> list[str]:
    """The words of a message's text, including what tool results said."""
    if isinstance(content, str):
        return content.split()
    words: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") in ("text", "thinking"):
            words += str(block.get("text") or block.get("thinking") or "").split()
        elif block.get("type") == "tool_result":
            words += _text_of(block.get("content"))
    return words


def count_tokens(body: dict[str, Any]) -> int:
    system = body.get("system")
    total = len(_text_of(system)) if system else 0
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            total += len(_text_of(message.get("content"))) + 3
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            total += len(_encode(tool)) // 4
    return total or 1


@dataclass(frozen=True, slots=True)
class Reply:
    """What the assistant says, as final content blocks, with its stop reason and token counts."""

    blocks: tuple[dict[str, Any], ...]
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int


def plan_reply(body: dict[str, Any], name: str, safety: Safety = None) -> Reply:
    """Thinking first (when enabled), then one tool_use (when tools apply) or the echo text."""
    prompt = count_tokens(body)
    blocks: list[dict[str, Any]] = []
    if _thinking_budget(body) is not None:
        thought = f"The user wants an answer from {name}; a short, direct one will do."
        digest = hashlib.sha256(thought.encode()).digest().hex()
        blocks.append({"type": "thinking", "thinking": thought, "signature": f"EqQBsim{digest}"})
    if safety == "prompt":
        return _reply((), "refusal", None, prompt)
    tool = None if safety else _tool_use(body)
    if tool is not None:
        return _reply((*blocks, tool), "tool_use", None, prompt)
    text, stop, sequence = _text(body, name, safety)
    return _reply((*blocks, {"type": "text", "text": text}), stop, sequence, prompt)


def _reply(blocks: tuple[dict[str, Any], ...], stop: str, sequence: str | None, prompt: int) -> Reply:
    output = 0
    for block in blocks:
        if block["type"] == "tool_use":
            output += len(_encode(block["input"])) // 4 + 1
        else:
            output += len(str(block.get("text") or block.get("thinking") or "").split())
    return Reply(blocks, stop, sequence, prompt, output or 1)


def _tool_use(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    choice = _mapping(body.get("tool_choice"))
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    if not tools or choice.get("type") == "none" or (messages and _answers_tool(messages[-1])):
        return None
    wanted = choice.get("name") if choice.get("type") == "tool" else _named_tool(messages)
    chosen = next((t for t in tools if t.get("name") == wanted), tools[0])
    arguments = _example(chosen.get("input_schema") or {})
    digest = hashlib.sha256(_encode(arguments) + str(chosen.get("name")).encode()).hexdigest()[:24]
    return {"type": "tool_use", "id": f"toolu_{digest}", "name": str(chosen.get("name", "tool")), "input": arguments}


def _named_tool(messages: list[dict[str, Any]]) -> str | None:
    """The tool the last user message asks for by writing `tool_call=NAME` (a tool result is no ask)."""
    last = messages[-1] if messages else {}
    words = _text_of(last.get("content")) if last.get("role") == "user" else []
    return next((w[len("tool_call=") :].rstrip(".,;") for w in words if w.startswith("tool_call=")), None)


def _answers_tool(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )


def _text(body: dict[str, Any], name: str, safety: Safety) -> tuple[str, str, str | None]:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    text = f"Echo from {name}: {' '.join(_text_of(last_user.get('content'))[:8])}. {_FILLER}"
    words = text.split()
    if safety == "output":  # a classifier stopped the answer half-way
        return " ".join(words[: len(words) // 2]), "refusal", None
    limit = body.get("max_tokens")
    truncated = isinstance(limit, int) and 0 < limit < len(words)
    if truncated:
        text = " ".join(words[:limit])
    for sequence in body.get("stop_sequences") or []:  # a stop sequence cuts before the token limit would
        if isinstance(sequence, str) and sequence and sequence in text:
            return text[: text.index(sequence)], "stop_sequence", sequence
    return text, "max_tokens" if truncated else "end_turn", None


def _usage(reply: Reply, output: int) -> dict[str, int]:
    return {
        "input_tokens": reply.input_tokens,
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _envelope(model: str, reply: Reply, ident: str, *, started: bool) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [] if started else list(reply.blocks),
        "stop_reason": None if started else reply.stop_reason,
        "stop_sequence": None if started else reply.stop_sequence,
        "usage": _usage(reply, 1 if started else reply.output_tokens),
    }


def message(model: str, reply: Reply, ident: str) -> bytes:
    return _encode(_envelope(model, reply, ident, started=False))


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def stream_events(model: str, reply: Reply, ident: str, pieces: int) -> tuple[list[bytes], int]:
    """Every event of a stream in order, and the index of the first content delta (where TTFT is felt)."""
    payloads, first = stream_payloads(model, reply, ident, pieces)
    return [_sse(str(data["type"]), data) for data in payloads], first


def stream_payloads(model: str, reply: Reply, ident: str, pieces: int) -> tuple[list[dict[str, Any]], int]:
    """Every event of a stream as its JSON object (Bedrock's InvokeModelWithResponseStream carries these in its
    frames), and the index of the first content delta."""
    events: list[dict[str, Any]] = [{"type": "message_start", "message": _envelope(model, reply, ident, started=True)}]
    first = 0
    for index, block in enumerate(reply.blocks):
        events.append({"type": "content_block_start", "index": index, "content_block": _opening(block)})
        if index == 0:
            events.append({"type": "ping"})
            first = len(events)
        events += [_delta(index, delta) for delta in _deltas(block, pieces)]
        events.append({"type": "content_block_stop", "index": index})
    if not reply.blocks:
        events.append({"type": "ping"})
        first = len(events)
    stop = {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence}
    events.append({"type": "message_delta", "delta": stop, "usage": {"output_tokens": reply.output_tokens}})
    events.append({"type": "message_stop"})
    return events, first


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _opening(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] == "tool_use":
        return {**block, "input": {}}
    if block["type"] == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {"type": "text", "text": ""}


def _deltas(block: dict[str, Any], pieces: int) -> list[dict[str, Any]]:
    if block["type"] == "tool_use":
        raw = _encode(block["input"]).decode()
        return [{"type": "input_json_delta", "partial_json": part} for part in _split(raw, pieces)]
    if block["type"] == "thinking":
        parts = [{"type": "thinking_delta", "thinking": p} for p in _split_words(block["thinking"], pieces)]
        return [*parts, {"type": "signature_delta", "signature": block["signature"]}]
    return [{"type": "text_delta", "text": part} for part in _split_words(block["text"], pieces) if part]
