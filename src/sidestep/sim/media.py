"""The relayed-only APIs as the simulator speaks them: OpenAI's moderations, image generation, audio
transcription (a multipart/form-data body) and speech (binary audio, streamed in pieces), and rerank in
Cohere's shape (`/v2/rerank`, and `/v1/rerank` as vLLM and Jina serve it). Answers are deterministic: derived
from the request, so tests can assert on them.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
from typing import Any

import msgspec

__all__ = ["CONTENT_TYPES", "form_fields", "image", "invalid", "moderation", "rerank", "speech", "transcription"]

_encode = msgspec.json.Encoder().encode
_CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence")
CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac", "wav": "audio/wav"}
SPEECH_CHUNK = 4096  # bytes per streamed piece of audio


def invalid(operation: str, body: dict[str, Any]) -> str | None:
    """What the real API would refuse with a 400, as its message."""
    if operation == "moderations" and not isinstance(body.get("input"), str | list):
        return "'input' is a required property"
    if operation == "images" and not isinstance(body.get("prompt"), str):
        return "'prompt' is a required property"
    if operation == "speech" and (not isinstance(body.get("input"), str) or "voice" not in body):
        return "'input' and 'voice' are required properties"
    if operation == "rerank" and (
        not isinstance(body.get("query"), str) or not isinstance(body.get("documents"), list)
    ):
        return "invalid request: query and documents are required"
    return None


def moderation(body: dict[str, Any], model: str, served_by: str) -> bytes:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    results = []
    for each in inputs:
        text = each if isinstance(each, str) else str(each)
        flagged = "kill" in text.lower()
        results.append(
            {
                "flagged": flagged,
                "categories": {name: flagged and name == "violence" for name in _CATEGORIES},
                "category_scores": {name: 0.9 if flagged and name == "violence" else 0.01 for name in _CATEGORIES},
            }
        )
    return _encode({"id": f"modr-{served_by}", "model": model, "results": results})


def image(body: dict[str, Any], model: str, served_by: str, created: int) -> bytes:
    n = body.get("n")
    count = n if isinstance(n, int) else 1
    prompt = str(body.get("prompt", ""))
    b64 = body.get("response_format") == "b64_json"
    data = [
        {"b64_json": "iVBORw0KGgo="}
        if b64
        else {"url": f"https://sim.invalid/{served_by}/{i}.png", "revised_prompt": prompt}
        for i in range(max(1, min(count, 10)))
    ]
    usage = {"input_tokens": len(prompt.split()), "output_tokens": 0, "total_tokens": len(prompt.split())}
    return _encode({"created": created, "data": data, "usage": usage})


def form_fields(raw: bytes, content_type: str) -> dict[str, bytes] | None:
    """The fields of a multipart/form-data body (file parts by name too); None when it is not one."""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        return None
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload
    return fields


def transcription(fields: dict[str, bytes], served_by: str) -> tuple[bytes, str]:
    """The transcript of the `file` field (its size and a digest: deterministic), as `response_format` asks."""
    audio = fields["file"]
    text = f"transcript by {served_by}: {len(audio)} bytes, {hashlib.sha256(audio).hexdigest()[:8]}"
    kind = fields.get("response_format", b"json").decode()
    seconds = max(1, len(audio) // 16000)
    if kind == "text":
        return text.encode(), "text/plain; charset=utf-8"
    return _encode({"text": text, "usage": {"type": "duration", "seconds": seconds}}), "application/json"


def speech(body: dict[str, Any], served_by: str) -> tuple[list[bytes], str]:
    """Audio bytes for `input` (a fake MP3: an ID3 tag, then bytes derived from the text), in pieces."""
    text = str(body.get("input", ""))
    seed = hashlib.sha256(f"{served_by}:{text}".encode()).digest()
    audio = b"ID3\x04\x00\x00\x00\x00\x00\x00" + seed * max(4, len(text) * 8)
    kind = CONTENT_TYPES.get(str(body.get("response_format", "mp3")), "application/octet-stream")
    return [audio[i : i + SPEECH_CHUNK] for i in range(0, len(audio), SPEECH_CHUNK)], kind


def rerank(body: dict[str, Any], model: str, served_by: str, cohere: bool) -> bytes:
    """Documents scored by the words they share with the query, best first; Cohere's billed search units, or
    vLLM/Jina's token usage and documents."""
    query = set(str(body["query"]).lower().split())
    documents = [d if isinstance(d, str) else str((d or {}).get("text", "")) for d in body["documents"]]
    scored = sorted(
        ((len(query & set(doc.lower().split())) / (len(query) or 1), i) for i, doc in enumerate(documents)),
        key=lambda pair: (-pair[0], pair[1]),
    )
    top_n = body.get("top_n")
    if isinstance(top_n, int) and top_n > 0:
        scored = scored[:top_n]
    if cohere:
        results: list[dict[str, Any]] = [{"index": i, "relevance_score": round(s, 4)} for s, i in scored]
        meta = {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
        return _encode({"id": f"rerank-{served_by}", "results": results, "meta": meta})
    results = [{"index": i, "document": {"text": documents[i]}, "relevance_score": round(s, 4)} for s, i in scored]
    tokens = sum(len(doc.split()) for doc in documents) + len(query)
    return _encode({"id": f"rerank-{served_by}", "model": model, "usage": {"total_tokens": tokens}, "results": results})
