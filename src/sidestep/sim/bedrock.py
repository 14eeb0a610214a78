"""AWS Bedrock's Converse API as the simulator speaks it: `converse` answers, `converse-stream` as binary
AWS event-stream frames, `invoke` (a Claude model's own body, as Bedrock serves it) and
`invoke-with-response-stream` (Claude's own events, each base64 in a `chunk` frame, Bedrock's invocation
metrics appended to the last), errors with `x-amzn-errortype`, and SigV4 checking.

Frames are written by the format's one encoder (`sidestep.formats.bedrock_converse.eventstream.frame`), the
one the gateway writes its own Bedrock clients' streams with; the tests read both with botocore's decoder,
which checks every length and CRC. Like Bedrock, a body with a field Converse does not have is refused
(the gateway's own fields must never reach it). Signatures are
checked with botocore when the simulator knows the secret for the access key (`api_keys` entries written
`ACCESS_KEY_ID:SECRET`); Bedrock API keys (`Authorization: Bearer`) are checked like any other key.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
import zlib
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from sidestep.formats.bedrock_converse.eventstream import exception_frame, frame
from sidestep.sim.openai import _FILLER, _example, _split_words

__all__ = [
    "MALFORMED_BODY",
    "Reply",
    "check_auth",
    "converse",
    "error",
    "frame",
    "invalid",
    "invalid_invoke",
    "invoke_chunk",
    "invoke_stream_events",
    "plan_reply",
    "stream_error",
    "stream_events",
]

Safety = Literal["prompt", "output"] | None
_encode = msgspec.json.Encoder().encode
_ERRORS = {
    400: ("ValidationException", "Malformed input request, please reformat your input and try again."),
    401: ("UnrecognizedClientException", "The security token included in the request is invalid."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    424: ("ModelErrorException", "The model encountered an error processing the request."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/bedrock/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)
_CONVERSE_FIELDS = frozenset(
    {
        "messages",
        "system",
        "inferenceConfig",
        "toolConfig",
        "guardrailConfig",
        "additionalModelRequestFields",
        "promptVariables",
        "additionalModelResponseFieldPaths",
        "requestMetadata",
        "performanceConfig",
    }
)
MALFORMED_BODY = b'{"output": {"message": {"content": ['


def error(status: int, message: str | None = None) -> tuple[bytes, list[tuple[str, str]]]:
    kind, default = _ERRORS.get(status, ("InternalServerException", f"Simulated error {status}."))
    return _encode({"message": message or default}), [("x-amzn-errortype", f"{kind}:http://internal.amazon.com/")]


def check_auth(
    headers: dict[str, str], method: str, path: str, query: str, body: bytes, keys: frozenset[str] | None
) -> tuple[int, str] | None:
    """None when the request is authorised; otherwise (status, message) as Bedrock would answer."""
    value = headers.get("authorization", "")
    if value.startswith("Bearer "):
        token = value[7:]
        return None if keys is None or token in keys else (403, "Invalid API Key format or API key is not valid.")
    match = _AUTH.match(value)
    if match is None or "x-amz-date" not in headers:
        return 403, "Missing Authentication Token"
    akid = match["akid"]
    secrets = {k.split(":", 1)[0]: k.split(":", 1)[1] for k in keys or () if ":" in k}
    if keys is not None and akid not in secrets:
        return 403, "The security token included in the request is invalid."
    if akid in secrets and _signature(headers, method, path, query, body, secrets[akid], match) != match["signature"]:
        return 403, "The request signature we calculated does not match the signature you provided."
    return None


def _signature(
    headers: dict[str, str], method: str, path: str, query: str, body: bytes, secret: str, match: re.Match[str]
) -> str:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signed = [name for name in match["signed"].split(";") if name != "host"]
    url = f"http://{headers.get('host', 'localhost')}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers={n: headers[n] for n in signed if n in headers})
    request.context["timestamp"] = headers["x-amz-date"]
    auth = SigV4Auth(
        Credentials(match["akid"], secret, headers.get("x-amz-security-token")), "bedrock", match["region"]
    )
    return str(auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request))


def invalid(body: dict[str, Any]) -> str | None:
    """The ValidationException message the real API would give for this body, or None."""
    extraneous = sorted(set(body) - _CONVERSE_FIELDS)
    if extraneous:
        return f"Malformed input request: extraneous key [{extraneous[0]}] is not permitted, please reformat your input and try again."  # noqa: E501
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "The model returned the following errors: messages: at least one message is required"
    previous = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{index}.role: must be one of user, assistant"
        if not isinstance(message.get("content"), list) or not message["content"]:
            return f"messages.{index}.content: must not be empty"
        if message["role"] == previous:
            return "A conversation must alternate between user and assistant roles."
        previous = message["role"]
    if messages[0]["role"] != "user":
        return "A conversation must start with a user message. Try again with a conversation that starts with a user message."  # noqa: E501
    return None


def invalid_invoke(body: dict[str, Any]) -> str | None:
    """InvokeModel with a Claude model: its own Messages body, with Bedrock's `anthropic_version` and no model."""
    if not str(body.get("anthropic_version", "")).startswith("bedrock-"):
        return "Malformed input request: #: required key [anthropic_version] not found, please reformat your input."
    if "model" in body or "stream" in body:
        return "Malformed input request: #: extraneous key [model or stream] is not permitted."
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "Malformed input request: #/messages: expected minimum item count: 1, found: 0"
    return None


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer's content blocks, stop reason and token counts."""

    blocks: tuple[dict[str, Any], ...]
    stop: str
    prompt: int

    @property
    def output(self) -> int:
        return (
            sum(len(_encode(b)) // 4 if "toolUse" in b else len(str(b.get("text", "")).split()) for b in self.blocks)
            or 1
        )


def _words(message: Any) -> list[str]:
    words: list[str] = []
    for block in message.get("content") or [] if isinstance(message, dict) else []:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            words += block["text"].split()
        elif isinstance(block, dict) and isinstance(block.get("toolResult"), dict):
            words += _encode(block["toolResult"].get("content")).decode().split()
    return words


def plan_reply(body: dict[str, Any], name: str, safety: Safety = None) -> Reply:
    """One toolUse block (when tools apply), else the echo; a guardrail stops it when `safety` says so."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    prompt = (
        sum(len(_words(m)) + 3 for m in messages)
        + sum(len(str(s.get("text", "")).split()) for s in body.get("system") or [])
        or 1
    )
    if safety == "prompt":
        return Reply(({"text": "Sorry, the model cannot answer this question."},), "guardrail_intervened", prompt)
    call = None if safety else _tool_use(body, messages)
    if call is not None:
        return Reply((call,), "tool_use", prompt)
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    text = f"Echo from {name}: {' '.join(_words(last_user)[:8])}. {_FILLER}"
    system = " ".join(str(s.get("text", "")) for s in body.get("system") or [] if isinstance(s, dict))
    if "single JSON object" in system:
        text = _encode({"answer": f"from {name}"}).decode()
    config = body.get("inferenceConfig") or {}
    words, limit, stop = text.split(), config.get("maxTokens"), "end_turn"
    if isinstance(limit, int) and 0 < limit < len(words):
        text, stop = " ".join(words[:limit]), "max_tokens"
    if safety == "output":
        text, stop = " ".join(words[: len(words) // 2]), "content_filtered"
    return Reply(({"text": text},), stop, prompt)


def _tool_use(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    config = body.get("toolConfig") or {}
    specs = [
        t["toolSpec"] for t in config.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("toolSpec"), dict)
    ]
    answered = bool(messages) and any(
        "toolResult" in b for b in messages[-1].get("content") or [] if isinstance(b, dict)
    )
    if not specs or answered:
        return None
    wanted = ((config.get("toolChoice") or {}).get("tool") or {}).get("name")
    chosen = next((s for s in specs if s.get("name") == wanted), specs[0])
    schema = (chosen.get("inputSchema") or {}).get("json") or {}
    ident = f"tooluse_{zlib.crc32(str(chosen.get('name')).encode()):010d}"
    return {"toolUse": {"toolUseId": ident, "name": str(chosen.get("name", "tool")), "input": _example(schema)}}


def _usage(reply: Reply) -> dict[str, int]:
    return {"inputTokens": reply.prompt, "outputTokens": reply.output, "totalTokens": reply.prompt + reply.output}


def converse(reply: Reply) -> bytes:
    return _encode(
        {
            "output": {"message": {"role": "assistant", "content": list(reply.blocks)}},
            "stopReason": reply.stop,
            "usage": _usage(reply),
            "metrics": {"latencyMs": 42},
        }
    )


def _event(name: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, _encode({**payload, "p": "abcdefghij"[: len(name) % 10]}))  # AWS pads with "p"


def stream_error(message: str | None = None, kind: str = "modelStreamErrorException") -> bytes:
    return exception_frame(kind, message or "The model stream failed.")


def stream_events(reply: Reply, pieces: int) -> tuple[list[bytes], int]:
    """Every frame of a ConverseStream answer, and the index of the first content frame."""
    frames = [_event("messageStart", {"role": "assistant"})]
    for index, block in enumerate(reply.blocks):
        if "toolUse" in block:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            frames.append(_event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            arguments = _encode(use["input"]).decode()
            step = max(1, len(arguments) // max(1, pieces))
            for at in range(0, len(arguments), step):
                delta = {"toolUse": {"input": arguments[at : at + step]}}
                frames.append(_event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
        else:
            texts = _split_words(str(block.get("text", "")), pieces)
            frames += [_event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": t}}) for t in texts]
        frames.append(_event("contentBlockStop", {"contentBlockIndex": index}))
    frames.append(_event("messageStop", {"stopReason": reply.stop}))
    frames.append(_event("metadata", {"usage": _usage(reply), "metrics": {"latencyMs": 42}}))
    return frames, 1


def invoke_chunk(data: bytes) -> bytes:
    """One `chunk` frame of InvokeModelWithResponseStream: `data`, the model's event, base64 in `bytes`."""
    return _event("chunk", {"bytes": base64.b64encode(data).decode()})


def invoke_stream_events(payloads: list[dict[str, Any]], first: int) -> tuple[list[bytes], int]:
    """A Claude stream's events (`sim.anthropic.stream_payloads`) as Bedrock frames them, its invocation metrics
    appended to the last event (as Bedrock does), and the index of the first content frame."""
    start = payloads[0].get("message") or {}
    usage = start.get("usage") or {}
    output = next((p["usage"].get("output_tokens", 0) for p in payloads if p.get("type") == "message_delta"), 0)
    metrics = {
        "inputTokenCount": usage.get("input_tokens", 0),
        "outputTokenCount": output,
        "invocationLatency": 42,
        "firstByteLatency": 21,
    }
    *body, last = payloads
    events = [*body, {**last, "amazon-bedrock-invocationMetrics": metrics}]
    return [invoke_chunk(_encode(event)) for event in events], first


def model_from_path(path: str) -> tuple[str, str]:
    """`/model/{id}/converse[-stream]` → (model id, action)."""
    rest = path[len("/model/") :]
    model, _, action = rest.rpartition("/")
    return urllib.parse.unquote(model), action
