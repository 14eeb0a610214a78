"""Cohere's Chat v2 API (`POST /v2/chat`) as the simulator speaks it: answers, typed SSE stream events,
errors as `{"id", "message"}`. Pure functions of the request (and the simulator's name)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from sidestep.sim.openai import _FILLER, _example, _split_words, _vector

__all__ = [
    "MALFORMED_BODY",
    "MALFORMED_EVENT",
    "Reply",
    "chat",
    "embed",
    "error_body",
    "invalid",
    "plan_reply",
    "stream_error",
    "stream_events",
]

Safety = Literal["prompt", "output"] | None
_encode = msgspec.json.Encoder().encode
_MESSAGES = {
    400: "invalid request: message must be at least 1 token long or tool results must be specified.",
    401: "invalid api token",
    429: "You are using a Trial key, which is limited to 10 API calls / minute.",
    500: "internal server error, this has been reported to our developers.",
    503: "service unavailable",
}
MALFORMED_BODY = b'{"id": "broken", "message": {"content": ['
MALFORMED_EVENT = b"event: content-delta\ndata: {not json\n\n"


def error_body(status: int, message: str | None = None) -> bytes:
    return _encode({"id": f"err-{status}", "message": message or _MESSAGES.get(status, f"Simulated error {status}.")})


def invalid(body: dict[str, Any]) -> str | None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "invalid request: model must be specified"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "invalid request: messages must not be empty"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant", "tool"):
            return "invalid request: role must be one of system, user, assistant, tool"
    return None


@dataclass(frozen=True, slots=True)
class Reply:
    text: str | None
    call: dict[str, Any] | None
    finish: str
    prompt: int

    @property
    def output(self) -> int:
        return len(_encode(self.call)) // 4 if self.call else len((self.text or "").split()) or 1


def _words(content: Any) -> list[str]:
    if isinstance(content, str):
        return content.split()
    if isinstance(content, list):
        return [w for part in content if isinstance(part, dict) for w in str(part.get("text", "")).split()]
    return []


def plan_reply(body: dict[str, Any], name: str, safety: Safety = None) -> Reply:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    prompt = sum(len(_words(m.get("content"))) + 3 for m in messages) or 1
    call = _tool_call(body, messages)
    if call is not None and not safety:
        return Reply(None, call, "TOOL_CALL", prompt)
    fmt = body.get("response_format") or {}
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        schema = fmt.get("json_schema")
        value = _example(schema) if isinstance(schema, dict) else {"answer": f"from {name}"}
        return Reply(_encode(value).decode(), None, "COMPLETE", prompt)
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    text = f"Echo from {name}: {' '.join(_words(last_user.get('content'))[:8])}. {_FILLER}"
    words, limit = text.split(), body.get("max_tokens")
    if isinstance(limit, int) and 0 < limit < len(words):
        return Reply(" ".join(words[:limit]), None, "MAX_TOKENS", prompt)
    return Reply(text, None, "COMPLETE", prompt)


def _tool_call(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    tools = [t.get("function") or {} for t in body.get("tools") or [] if isinstance(t, dict)]
    if not tools or body.get("tool_choice") == "NONE" or (messages and messages[-1].get("role") == "tool"):
        return None
    chosen = tools[0]
    name = str(chosen.get("name", "tool"))
    arguments = _encode(_example(chosen.get("parameters") or {})).decode()
    return {
        "id": f"{name}_{zlib.crc32(name.encode()):08x}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def _usage(reply: Reply) -> dict[str, Any]:
    tokens = {"input_tokens": reply.prompt, "output_tokens": reply.output}
    return {"billed_units": dict(tokens), "tokens": tokens}


def chat(reply: Reply, ident: str) -> bytes:
    message: dict[str, Any] = {"role": "assistant"}
    if reply.call is not None:
        message["tool_plan"] = f"I will call {reply.call['function']['name']}."
        message["tool_calls"] = [reply.call]
    else:
        message["content"] = [{"type": "text", "text": reply.text or ""}]
    return _encode({"id": ident, "message": message, "finish_reason": reply.finish, "usage": _usage(reply)})


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + _encode({"type": kind, **payload}) + b"\n\n"


def stream_error(message: str | None = None) -> bytes:
    delta = {"finish_reason": "ERROR", "error": message or "internal server error"}
    return _event("message-end", {"delta": delta})


def stream_events(reply: Reply, ident: str, pieces: int) -> tuple[list[bytes], int]:
    events = [_event("message-start", {"id": ident, "delta": {"message": {"role": "assistant"}}})]
    if reply.call is not None:
        call = reply.call
        events.append(_event("tool-plan-delta", {"delta": {"message": {"tool_plan": "I will call a tool."}}}))
        start = {"id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}
        events.append(_event("tool-call-start", {"index": 0, "delta": {"message": {"tool_calls": start}}}))
        arguments = call["function"]["arguments"]
        step = max(1, len(arguments) // max(1, pieces))
        events += [
            _event(
                "tool-call-delta",
                {
                    "index": 0,
                    "delta": {"message": {"tool_calls": {"function": {"arguments": arguments[i : i + step]}}}},
                },
            )
            for i in range(0, len(arguments), step)
        ]
        events.append(_event("tool-call-end", {"index": 0}))
    else:
        events.append(
            _event("content-start", {"index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}})
        )
        events += [
            _event("content-delta", {"index": 0, "delta": {"message": {"content": {"text": text}}}})
            for text in _split_words(reply.text or "", pieces)
        ]
        events.append(_event("content-end", {"index": 0}))
    events.append(_event("message-end", {"delta": {"finish_reason": reply.finish, "usage": _usage(reply)}}))
    return events, 2


def embed(body: dict[str, Any]) -> tuple[int, bytes]:
    """`/v2/embed`: deterministic float vectors per text (1024 dimensions unless `output_dimension`)."""
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return 400, error_body(400, "invalid request: texts must be a non-empty list of strings")
    if body.get("input_type") not in ("search_document", "search_query", "classification", "clustering", "image"):
        return 400, error_body(400, "invalid request: input_type is required for embed models v3 and higher")
    requested = body.get("output_dimension")
    dims = requested if isinstance(requested, int) and requested > 0 else 1024
    tokens = sum(max(1, len(t.split())) for t in texts)
    answer = {
        "id": f"embed-{zlib.crc32(repr(texts).encode()):08x}",
        "embeddings": {"float": [_vector(t, dims) for t in texts]},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
        "response_type": "embeddings_by_type",
    }
    return 200, _encode(answer)
