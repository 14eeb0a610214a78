"""Google Gemini's generateContent API (AI Studio) as the simulator speaks it: responses, streams, errors.

Pure functions of the request (and the simulator's name). Streams come as SSE (`alt=sse`: `data:` lines
ending in CRLF, as Google sends them, with no `[DONE]`) or, without `alt=sse`, as one JSON array sent
piece by piece. Errors use Google's `{"error": {"code", "message", "status"}}` shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from sidestep.sim.openai import _FILLER, _example, _split_words, _vector

__all__ = [
    "MALFORMED_BODY",
    "MALFORMED_EVENT",
    "METHODS",
    "Reply",
    "count_tokens",
    "embeddings",
    "error_body",
    "invalid",
    "key_error",
    "plan_reply",
    "response",
    "stream_error",
    "stream_events",
]

Safety = Literal["prompt", "output"] | None
METHODS = ("generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents")
# What a GenerateContentRequest may hold (REST takes camelCase and snake_case); anything else is refused.
_FIELDS = {
    "contents", "systemInstruction", "system_instruction", "tools", "toolConfig", "tool_config",
    "generationConfig", "generation_config", "safetySettings", "safety_settings", "cachedContent",
    "cached_content", "labels", "model",
}  # fmt: skip
_encode = msgspec.json.Encoder().encode

_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    403: "The caller does not have permission",
    404: "models/unknown is not found for API version v1beta, or is not supported for generateContent.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_RATINGS = [
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
]
_SEP = b"\r\n\r\n"
MALFORMED_BODY = b'{"candidates": [{"content": {"parts": ['
MALFORMED_EVENT = b"data: {not json" + _SEP


def error_body(status: int, message: str | None = None, retry_after: float | None = None) -> bytes:
    kind = _STATUSES.get(status) or ("UNKNOWN" if status >= 500 else "FAILED_PRECONDITION")
    error: dict[str, Any] = {
        "code": status,
        "message": message or _MESSAGES.get(status) or f"Simulated error {status}.",
    }
    error["status"] = kind
    if retry_after is not None:  # Google says when to come back in the body, as a google.rpc.RetryInfo
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}]
    return _encode({"error": error})


def key_error(missing: bool) -> tuple[int, bytes]:
    """What Google answers for no API key (403) or a wrong one (400 API_KEY_INVALID, not 401)."""
    if missing:
        text = (
            "Method doesn't allow unregistered callers (callers without established identity)."
            " Please use API Key or other form of API consumer identity to call this API."
        )
        return 403, error_body(403, text)
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
    }
    body = {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}
    return 400, _encode({"error": {**body, "details": [info]}})


def stream_error(message: str | None = None) -> bytes:
    """An error object sent as the last `data:` line when Google gives up mid-stream."""
    return b"data: " + error_body(503, message) + _SEP


def invalid(body: dict[str, Any], method: str = "generateContent", model: str = "") -> str | None:
    """The INVALID_ARGUMENT message the real API would give for this body, or None."""
    if method in ("embedContent", "batchEmbedContents"):
        return _invalid_embedding(body, method, model)
    if method == "countTokens" and "generateContentRequest" in body:
        inner = body["generateContentRequest"]
        if not isinstance(inner, dict) or not str(inner.get("model", "")).startswith("models/"):
            return "* CountTokensRequest.generate_content_request.model: a model name is required.\n"
        body = inner
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
    for content in contents:
        if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
            return "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n"
        if content.get("role", "user") not in ("user", "model", "function"):
            return "Please use a valid role: user, model."
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
    return None


def _invalid_embedding(body: dict[str, Any], method: str, model: str) -> str | None:
    requests: Any = [body] if method == "embedContent" else body.get("requests")
    if method == "batchEmbedContents" and (not isinstance(requests, list) or not requests or len(requests) > 100):
        return "* BatchEmbedContentsRequest.requests: between 1 and 100 requests."
    for request in requests:
        content = request.get("content") if isinstance(request, dict) else None
        if not isinstance(content, dict) or not isinstance(content.get("parts"), list) or not content["parts"]:
            return "* EmbedContentRequest.content: content is not specified"
        if method == "batchEmbedContents" and request.get("model") != f"models/{model}":
            return f"Model {request.get('model')!r} in a batch request must match models/{model}."
    return None


def count_tokens(body: dict[str, Any]) -> bytes:
    inner = body.get("generateContentRequest")
    return _encode({"totalTokens": prompt_tokens(inner if isinstance(inner, dict) else body)})


def embeddings(body: dict[str, Any]) -> bytes:
    """`embedContent` (one vector) or `batchEmbedContents` (one per request): the OpenAI dialect's vectors."""
    requests = body.get("requests", [body])
    vectors = []
    for request in requests:
        words = _words(request.get("content"))
        dims = request.get("outputDimensionality")
        vectors.append(_vector(" ".join(words), dims if isinstance(dims, int) and dims > 0 else 768))
    if "requests" in body:
        return _encode({"embeddings": [{"values": v} for v in vectors]})
    return _encode({"embedding": {"values": vectors[0]}})


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _words(content: Any) -> list[str]:
    parts = content.get("parts") if isinstance(content, dict) else None
    words: list[str] = []
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            words += part["text"].split()
        elif isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
            words += _encode(part["functionResponse"].get("response")).decode().split()
    return words


def prompt_tokens(body: dict[str, Any]) -> int:
    total = len(_words(body.get("systemInstruction")))
    total += sum(len(_words(content)) + 3 for content in body.get("contents") or [])
    total += sum(len(_encode(tool)) // 4 for tool in body.get("tools") or [])
    return total or 1


@dataclass(frozen=True, slots=True)
class Reply:
    """The model's parts, with finish reason (None when the prompt was blocked) and token counts."""

    parts: tuple[dict[str, Any], ...]
    finish: str | None
    prompt: int
    thoughts: int

    @property
    def output(self) -> int:
        return sum(_part_tokens(part) for part in self.parts if not part.get("thought")) or 1


def _part_tokens(part: dict[str, Any]) -> int:
    if "functionCall" in part:
        return len(_encode(part["functionCall"])) // 4 + 1
    return len(str(part.get("text", "")).split())


def plan_reply(body: dict[str, Any], name: str, safety: Safety = None) -> Reply:
    """A thought (when asked for), then one functionCall (when tools apply) or the echo / JSON text."""
    prompt = prompt_tokens(body)
    if safety == "prompt":
        return Reply((), None, prompt, 0)
    config = _mapping(body.get("generationConfig"))
    parts: list[dict[str, Any]] = []
    thinking = _mapping(config.get("thinkingConfig"))
    if thinking.get("includeThoughts"):
        parts.append({"text": f"**Answering** The user wants a short answer from {name}.", "thought": True})
    thoughts = len(parts[0]["text"].split()) if parts else 0
    call = None if safety else _function_call(body)
    if call is not None:
        return Reply((*parts, call), "STOP", prompt, thoughts)
    text, finish = _text(body, config, name)
    if safety == "output":  # the answer was stopped half-way by the safety filter
        words = text.split()
        text, finish = " ".join(words[: len(words) // 2]), "SAFETY"
    return Reply((*parts, {"text": text}), finish, prompt, thoughts)


def _function_call(body: dict[str, Any]) -> dict[str, Any] | None:
    declarations = [
        declaration
        for tool in body.get("tools") or []
        if isinstance(tool, dict)
        for declaration in tool.get("functionDeclarations") or tool.get("function_declarations") or []
        if isinstance(declaration, dict)
    ]
    tool_config = _mapping(body.get("toolConfig"))
    config = tool_config.get("functionCallingConfig") or {}
    contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
    answered = bool(contents) and any("functionResponse" in p for p in contents[-1].get("parts") or [])
    if not declarations or str(config.get("mode", "AUTO")).upper() == "NONE" or answered:
        return None
    allowed = config.get("allowedFunctionNames") or []
    chosen = next((d for d in declarations if d.get("name") in allowed), declarations[0])
    schema = chosen.get("parameters") or chosen.get("parametersJsonSchema") or {}
    return {"functionCall": {"name": str(chosen.get("name", "tool")), "args": _example(_lower_types(schema))}}


def _lower_types(schema: Any) -> Any:
    """Gemini's OpenAPI schemas spell types in capitals (`OBJECT`, `STRING`)."""
    if isinstance(schema, list):
        return [_lower_types(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {k: v.lower() if k == "type" and isinstance(v, str) else _lower_types(v) for k, v in schema.items()}


def _text(body: dict[str, Any], config: dict[str, Any], name: str) -> tuple[str, str]:
    if config.get("responseMimeType") == "application/json":
        schema = config.get("responseSchema") or config.get("responseJsonSchema")
        value = _example(_lower_types(schema)) if isinstance(schema, dict) else {"answer": f"from {name}"}
        return _encode(value).decode(), "STOP"
    contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
    last_user = next((c for c in reversed(contents) if c.get("role", "user") == "user"), {})
    text = f"Echo from {name}: {' '.join(_words(last_user)[:8])}. {_FILLER}"
    words = text.split()
    limit = config.get("maxOutputTokens")
    truncated = isinstance(limit, int) and 0 < limit < len(words)
    if truncated:
        text = " ".join(words[:limit])
    for sequence in config.get("stopSequences") or []:
        if isinstance(sequence, str) and sequence and sequence in text:
            return text[: text.index(sequence)], "STOP"
    return text, "MAX_TOKENS" if truncated else "STOP"


def _usage(reply: Reply, output: int) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": reply.prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": reply.prompt + output + reply.thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.prompt}],
    }
    if reply.thoughts:
        usage["thoughtsTokenCount"] = reply.thoughts
    if not output:
        del usage["candidatesTokenCount"]
    return usage


def _payload(model: str, reply: Reply, ident: str, candidate: dict[str, Any] | None, output: int) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if candidate is None:
        data["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": _RATINGS}
    else:
        data["candidates"] = [candidate]
    return {**data, "usageMetadata": _usage(reply, output), "modelVersion": model, "responseId": ident}


def _candidate(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}} if parts else {}
    if finish is not None:
        candidate["finishReason"] = finish
    if finish == "SAFETY":
        candidate["safetyRatings"] = _RATINGS
    return {**candidate, "index": 0}


def response(model: str, reply: Reply, ident: str) -> bytes:
    if reply.finish is None:
        return _encode(_payload(model, reply, ident, None, 0))
    parts = [] if reply.finish == "SAFETY" else list(reply.parts)  # a blocked candidate comes without content
    return _encode(_payload(model, reply, ident, _candidate(parts, reply.finish), reply.output))


def stream_events(model: str, reply: Reply, ident: str, pieces: int, *, sse: bool) -> tuple[list[bytes], int]:
    """Every piece of a stream in order, and the index of the first one with content (where TTFT is felt)."""
    if reply.finish is None:
        payloads = [_payload(model, reply, ident, None, 0)]
    else:
        payloads = _chunks(model, reply, ident, pieces)
    if sse:
        return [b"data: " + _encode(p) + _SEP for p in payloads], 0
    last = len(payloads) - 1
    return [
        (b"[" if i == 0 else b",\r\n") + _encode(p) + (b"]" if i == last else b"") for i, p in enumerate(payloads)
    ], 0


def _chunks(model: str, reply: Reply, ident: str, pieces: int) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for part in reply.parts:
        if "text" in part and not part.get("thought"):
            groups += [{"text": text} for text in _split_words(part["text"], pieces) if text]
        else:
            groups.append(part)
    payloads, so_far = [], 0
    for index, part in enumerate(groups):
        so_far += _part_tokens(part) if not part.get("thought") else 0
        finish = reply.finish if index == len(groups) - 1 and reply.finish != "SAFETY" else None
        payloads.append(_payload(model, reply, ident, _candidate([part], finish), so_far))
    if reply.finish == "SAFETY" or not groups:
        payloads.append(_payload(model, reply, ident, _candidate([], reply.finish), reply.output))
    return payloads
