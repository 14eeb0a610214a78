"""What adapters check of a relayed-only answer (rerank, moderations, images, transcriptions) and the usage
they read from it. The answer itself goes to the client as the upstream sent it; this only decides whether it
is one (a 200 without its answer fails over, as for chat) and what it costs.

Usage, where the answer reports it: tokens (`usage.input_tokens`/`output_tokens`, `prompt_tokens`,
`total_tokens`: images of gpt-image-1, token-billed transcriptions, vLLM's and Jina's rerank) and units
(`Usage.units`, priced by `per_unit`): Cohere's `meta.billed_units.search_units`, one per image generated,
the seconds of a duration-billed transcription.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidestep.core.model import Usage
from sidestep.errors import UpstreamError
from sidestep.providers.base import no_answer

__all__ = ["relayed_usage"]

_decode = msgspec.json.Decoder().decode
_ANSWER = {"rerank": "results", "moderations": "results", "images": "data", "transcriptions": "text"}


def relayed_usage(provider: str, operation: str, body: bytes) -> Usage:
    """The usage of a relayed-only answer; raise (a retryable 502) when the 200 carries no answer."""
    if operation == "transcriptions" and not body.lstrip().startswith(b"{"):
        if not body.strip():  # text, srt or vtt: any text is an answer
            raise no_answer(provider, body, "transcript")
        return Usage()
    try:
        data = _decode(body)
    except msgspec.DecodeError as exc:
        raise UpstreamError(f"{provider} returned a malformed {operation} body: {exc}", status=502) from exc
    wanted = _ANSWER.get(operation)
    answer = data.get(wanted) if isinstance(data, dict) and wanted else None
    if answer is None or (isinstance(answer, list) and not answer and operation != "rerank"):
        raise no_answer(provider, body, f"`{wanted}`")
    usage = _tokens(data.get("usage"))
    if operation == "images" and isinstance(answer, list):
        usage.units = float(len(answer))
    elif operation == "rerank":
        billed = (data.get("meta") or {}).get("billed_units") or {}
        usage.units = _number(billed.get("search_units"))
        if not usage.input:
            usage.input = int(_number(billed.get("input_tokens")))
    elif operation == "transcriptions":
        raw = data.get("usage")
        if isinstance(raw, dict) and raw.get("type") == "duration":
            usage.units = _number(raw.get("seconds"))
    return usage


def _tokens(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    given = _number(raw.get("input_tokens")) or _number(raw.get("prompt_tokens"))
    output = _number(raw.get("output_tokens"))
    if not given and not output:
        given = _number(raw.get("total_tokens"))
    return Usage(input=int(given), output=int(output))


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0.0
