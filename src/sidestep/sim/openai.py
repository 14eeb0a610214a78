"""OpenAI's wire format as the simulator speaks it: chat completions, stream chunks, the legacy completions
(`text_completion`, `n`, `echo`, `logprobs`), embeddings, errors.

Answers are deterministic functions of the request (and the simulator's name), realistic enough that the
official SDK's types validate them: ids, usage, finish reasons, tool calls, JSON mode. With tools in the
request the model calls one: the first, the one `tool_choice` names, or the one the last user message asks
for by writing `tool_call=NAME`; once a tool's result comes back, the answer echoes that result.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import re
import struct
import time
from collections.abc import Iterator
from typing import Any

import msgspec

__all__ = [
    "chunk_events",
    "completion",
    "embeddings",
    "error_body",
    "legacy_completion",
    "legacy_events",
    "legacy_problem",
    "plan_legacy",
    "plan_reply",
]

_encode = msgspec.json.Encoder().encode

_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", None),
    409: ("conflict", None),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
_MESSAGES = {
    401: "Incorrect API key provided.",
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request.",
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
    504: "Gateway timeout.",
    529: "The engine is currently overloaded, please try again later.",
}
_FILLER = (
    "Failover keeps answers flowing when a provider stumbles. "
    "Every request takes the first healthy path through the route. "
    "Nothing here left this machine."
)


def error_body(status: int, message: str | None = None, param: str | None = None) -> bytes:
    kind, code = _ERRORS.get(status, ("server_error", None))
    text = message or _MESSAGES.get(status) or f"Simulated error {status}."
    return _encode({"error": {"message": text, "type": kind, "param": param, "code": code}})


def _words(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [w for part in value if isinstance(part, dict) for w in str(part.get("text", "")).split()]
    return []


def prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages") or []
    return sum(len(_words(m.get("content"))) + 3 for m in messages if isinstance(m, dict)) or 1


class Reply:
    """What the assistant says: text, or one tool call; with finish reason and token counts."""

    def __init__(self, text: str | None, tool: dict[str, Any] | None, finish: str, prompt: int) -> None:
        self.text = text
        self.tool = tool
        self.finish = finish
        self.prompt = prompt
        self.completion = len((text or "").split()) + (len(tool["arguments"]) // 4 if tool else 0) or 1


def plan_reply(body: dict[str, Any], name: str) -> Reply:
    prompt = prompt_tokens(body)
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    tool = _tool_call(body, messages)
    if tool is not None:
        return Reply(None, tool, "tool_calls", prompt)
    fmt = body.get("response_format") or {}
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        text = _encode(_example(schema) if schema else {"answer": f"from {name}"}).decode()
        return Reply(text, None, "stop", prompt)
    # After a tool's result the answer is built from it (an agent loop can see the result came back).
    last_user = next((m for m in reversed(messages) if m.get("role") in ("user", "tool")), {})
    words = _words(last_user.get("content"))[:8]
    text = f"Echo from {name}: {' '.join(words)}. {_FILLER}"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and 0 < limit < len(text.split()):
        return Reply(" ".join(text.split()[:limit]), None, "length", prompt)
    return Reply(text, None, "stop", prompt)


def _tool_call(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools or choice == "none" or (messages and messages[-1].get("role") == "tool"):
        return None
    functions = [t.get("function") or {} for t in tools if isinstance(t, dict)]
    chosen = functions[0] if functions else {}
    wanted = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else _named_tool(messages)
    chosen = next((f for f in functions if f.get("name") == wanted), chosen)
    arguments = _encode(_example(chosen.get("parameters") or {})).decode()
    digest = hashlib.sha256(arguments.encode() + str(chosen.get("name")).encode()).hexdigest()[:24]
    return {"id": f"call_{digest}", "name": str(chosen.get("name", "tool")), "arguments": arguments}


def _named_tool(messages: list[dict[str, Any]]) -> str | None:
    """The tool the last user message asks for by writing `tool_call=NAME`, if any."""
    last_user: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    for word in _words(last_user.get("content")):
        if word.startswith("tool_call="):
            return word[len("tool_call=") :].rstrip(".,;")
    return None


def _example(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        required = schema.get("required") or list(props)
        return {key: _example(props.get(key) or {}) for key in required}
    if schema.get("enum"):
        return schema["enum"][0]
    return {"string": "example", "number": 1, "integer": 1, "boolean": True, "array": []}.get(str(kind), "example")


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt,
        "completion_tokens": reply.completion,
        "total_tokens": reply.prompt + reply.completion,
    }


def completion(body: dict[str, Any], model: str, reply: Reply, ident: str) -> bytes:
    requested = body.get("n")
    n = requested if isinstance(requested, int) and requested > 0 else 1
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool is not None:
        call = reply.tool
        message["tool_calls"] = [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
        ]
    choices = [{"index": i, "message": message, "logprobs": None, "finish_reason": reply.finish} for i in range(n)]
    return _encode(
        {
            "id": ident,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": _usage(reply),
            "system_fingerprint": "fp_sidestep_sim",
        }
    )


def chunk_events(body: dict[str, Any], model: str, reply: Reply, ident: str, pieces: int) -> Iterator[bytes]:
    """Every `data:` event of a stream, in order, ending with `[DONE]`."""
    created = int(time.time())
    options = body.get("stream_options")
    with_usage = isinstance(options, dict) and bool(options.get("include_usage"))

    def event(delta: dict[str, Any], finish: str | None = None, usage: Any = None, choices: bool = True) -> bytes:
        payload: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_sidestep_sim",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
        }
        if with_usage:  # as OpenAI does: every chunk says `"usage":null`, the last one has the counts
            payload["usage"] = usage
        return b"data: " + _encode(payload) + b"\n\n"

    yield event({"role": "assistant", "content": ""})
    if reply.tool is not None:
        call = reply.tool
        yield event(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": ""},
                    }
                ]
            }
        )
        for part in _split(call["arguments"], pieces):
            yield event({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
    else:
        for part in _split_words(reply.text or "", pieces):
            yield event({"content": part})
    yield event({}, reply.finish)
    if with_usage:
        yield event({}, usage=_usage(reply), choices=False)
    yield b"data: [DONE]\n\n"


# -- the legacy completions (`POST /v1/completions`) ----------------------------------------------------


def _prompts(body: dict[str, Any]) -> list[str]:
    """Each prompt as text: a string, strings, or token ids (shown as `<id>` words)."""
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        return [" ".join(f"<{p}>" for p in prompt)]
    if isinstance(prompt, list):
        return [p if isinstance(p, str) else " ".join(f"<{t}>" for t in p) for p in prompt if isinstance(p, str | list)]
    return []


def legacy_problem(body: dict[str, Any]) -> str | None:
    """What OpenAI would refuse with a 400 (the checks the simulator makes), or None."""
    if "prompt" not in body or not _prompts(body):
        return "'prompt' is a required property"
    n = body.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 128:
        return "n must be an integer between 1 and 128"
    return None


def plan_legacy(body: dict[str, Any], name: str, prompt: str) -> Reply:
    """The text continuing one prompt: an echo of its first words (or, with `echo`, the prompt and then that)."""
    words = prompt.split()
    text = f" Echo from {name}: {' '.join(words[:8])}. {_FILLER}"
    limit = body.get("max_tokens")
    finish = "stop"
    if isinstance(limit, int) and 0 < limit < len(text.split()):
        text, finish = " " + " ".join(text.split()[:limit]), "length"
    if body.get("echo") is True:
        text = prompt + text
    return Reply(text, None, finish, max(1, len(words)))


def _legacy_choices(body: dict[str, Any], name: str) -> list[Reply]:
    n = body.get("n") if isinstance(body.get("n"), int) else 1
    return [plan_legacy(body, name, prompt) for prompt in _prompts(body) for _ in range(n or 1)]


def _logprobs(body: dict[str, Any], text: str) -> dict[str, Any] | None:
    if not isinstance(body.get("logprobs"), int):
        return None
    tokens = text.split(" ")
    offsets = list(itertools.accumulate((len(t) + 1 for t in tokens[:-1]), initial=0))
    return {"tokens": tokens, "token_logprobs": [-0.5] * len(tokens), "top_logprobs": None, "text_offset": offsets}


def _legacy_usage(replies: list[Reply]) -> dict[str, int]:
    prompt = sum({id(r): r.prompt for r in replies}.values()) if replies else 1
    completion = sum(r.completion for r in replies)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def legacy_completion(body: dict[str, Any], model: str, name: str, ident: str, finish: str | None = None) -> bytes:
    """A `text_completion`: one choice per prompt and `n`; `finish` replaces each choice's (a content filter)."""
    replies = _legacy_choices(body, name)
    choices = [
        {"text": r.text, "index": i, "logprobs": _logprobs(body, r.text or ""), "finish_reason": finish or r.finish}
        for i, r in enumerate(replies)
    ]
    return _encode(
        {
            "id": ident,
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": _legacy_usage(replies),
            "system_fingerprint": "fp_sidestep_sim",
        }
    )


def legacy_events(body: dict[str, Any], model: str, name: str, ident: str, pieces: int) -> list[bytes]:
    """Every `data:` event of a completions stream, choice by choice, ending with `[DONE]` (and, when
    `stream_options.include_usage` asks, a usage chunk with no choices before it)."""
    created = int(time.time())
    options = body.get("stream_options")
    with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    replies = _legacy_choices(body, name)

    def event(choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        payload = {"id": ident, "object": "text_completion", "created": created, "model": model, "choices": choices}
        if with_usage:
            payload["usage"] = usage
        return b"data: " + _encode(payload) + b"\n\n"

    events = []
    for index, reply in enumerate(replies):
        parts = _split_words(reply.text or "", pieces)
        events += [event([{"text": part, "index": index, "logprobs": None, "finish_reason": None}]) for part in parts]
        events.append(event([{"text": "", "index": index, "logprobs": None, "finish_reason": reply.finish}]))
    if with_usage:
        events.append(event([], _legacy_usage(replies)))
    events.append(b"data: [DONE]\n\n")
    return events


def _split_words(text: str, pieces: int) -> list[str]:
    words = text.split(" ")
    size = max(1, math.ceil(len(words) / max(1, pieces)))
    groups = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [g if i == 0 else " " + g for i, g in enumerate(groups)]


def _split(text: str, pieces: int) -> list[str]:
    size = max(1, math.ceil(len(text) / max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def embeddings(body: dict[str, Any], model: str) -> bytes:
    raw = body.get("input")
    inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
    requested = body.get("dimensions")
    dims = requested if isinstance(requested, int) and requested > 0 else 1536
    base64_out = body.get("encoding_format") == "base64"
    data, tokens = [], 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(map(str, item or []))
        tokens += max(1, len(text.split()))
        vector = _vector(text, dims)
        value: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if base64_out else vector
        data.append({"object": "embedding", "index": index, "embedding": value})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return _encode({"object": "list", "data": data, "model": model, "usage": usage})


_WORDS = re.compile(r"[a-z0-9]+")


def _vector(text: str, dims: int) -> list[float]:
    """A unit vector that preserves similarity: hashed word unigrams and bigrams (each feature adds ±1 at a
    few positions), so a paraphrase that shares most words lands near and an unrelated text far (cosine ~0)."""
    words = _WORDS.findall(text.lower())
    features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    values = [0.0] * dims
    for feature in features:
        digest = hashlib.blake2b(feature.encode(), digest_size=32).digest()
        for i in range(0, 32, 4):  # 8 (position, sign) pairs per feature
            position = int.from_bytes(digest[i : i + 3], "little") % dims
            values[position] += 1.0 if digest[i + 3] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in values))
    if norm == 0.0:  # no words, or features that cancel out (tiny `dimensions`): a vector of the text itself
        return _hashed_vector(text, dims)
    return [v / norm for v in values]


def _hashed_vector(text: str, dims: int) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    values: list[float] = []
    counter = 0
    while len(values) < dims:
        block = hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        values.extend((b - 127.5) / 127.5 for b in block)
        counter += 1
    values = values[:dims]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]
