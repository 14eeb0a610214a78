"""The request and answers every contender sees: an OpenAI chat completion of realistic size (~600 B)."""

from __future__ import annotations

import json

__all__ = ["SDK_HEADERS", "UPSTREAM_HEADERS", "cacheable_request", "chat_request", "completion_body", "stream_body"]

# What the official OpenAI Python SDK sends besides content-type, length and authorization …
SDK_HEADERS = (
    ("accept", "application/json"),
    ("accept-encoding", "gzip, deflate"),
    ("user-agent", "AsyncOpenAI/Python 1.109.1"),
    ("x-stainless-lang", "python"),
    ("x-stainless-package-version", "1.109.1"),
    ("x-stainless-os", "Linux"),
    ("x-stainless-arch", "x64"),
    ("x-stainless-runtime", "CPython"),
    ("x-stainless-runtime-version", "3.11.7"),
    ("x-stainless-async", "async:asyncio"),
    ("x-stainless-retry-count", "0"),
    ("x-stainless-read-timeout", "600"),
)
# … and what OpenAI's API answers with besides content-type and length (values are representative).
UPSTREAM_HEADERS = (
    ("access-control-expose-headers", "X-Request-ID"),
    ("openai-organization", "user-bench"),
    ("openai-processing-ms", "412"),
    ("openai-project", "proj_bench"),
    ("openai-version", "2020-10-01"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains; preload"),
    ("x-ratelimit-limit-requests", "10000"),
    ("x-ratelimit-limit-tokens", "30000000"),
    ("x-ratelimit-remaining-requests", "9999"),
    ("x-ratelimit-remaining-tokens", "29999950"),
    ("x-ratelimit-reset-requests", "6ms"),
    ("x-ratelimit-reset-tokens", "0s"),
    ("x-request-id", "req_0123456789abcdef0123456789abcdef"),
    ("cf-cache-status", "DYNAMIC"),
    ("x-content-type-options", "nosniff"),
    ("cf-ray", "8f0123456789abcd-FRA"),
    ("alt-svc", 'h3=":443"; ma=86400'),
)

_TEXT = "Failover keeps answers flowing when a provider stumbles; every request takes the first healthy path."


def chat_request(model: str, *, stream: bool = False, max_tokens: int = 64) -> bytes:
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Explain in two sentences why an LLM gateway should fail over."},
        ],
        "max_tokens": max_tokens,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def cacheable_request(model: str, variant: int) -> bytes:
    """`chat_request` made deterministic (temperature 0: the cache keeps it), its question numbered: one
    `variant` is one cache entry."""
    body = json.loads(chat_request(model))
    body["temperature"] = 0
    body["messages"][1]["content"] += f" (question {variant})"
    return json.dumps(body, separators=(",", ":")).encode()


def completion_body() -> bytes:
    body = {
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion",
        "created": 1764000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _TEXT, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 31, "completion_tokens": 20, "total_tokens": 51},
        "system_fingerprint": "fp_bench",
    }
    return json.dumps(body, separators=(",", ":")).encode()


def stream_body(chunks: int) -> bytes:
    """`chunks` content events, a finish event, a usage event and [DONE], as one SSE body: what OpenAI sends
    with `stream_options.include_usage` (`"usage":null` on every chunk, the counts in a last chunk without
    choices), which the realistic config asks for so that governance can count tokens."""
    words = _TEXT.split()
    events = []
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1764000000, "model": "gpt-4o-mini"}
    for i in range(chunks):
        delta = {"role": "assistant", "content": ""} if i == 0 else {"content": " " + words[i % len(words)]}
        events.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}], "usage": None})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None})
    usage = {"prompt_tokens": 31, "completion_tokens": chunks, "total_tokens": 31 + chunks}
    events.append({**base, "choices": [], "usage": usage})
    lines = [f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events]
    return ("".join(lines) + "data: [DONE]\n\n").encode()
