"""OpenAI's wire shapes that msgspec decodes into: the usage of an answer and the fields of a stream chunk
that readers look at (everything else is skipped by the decoder).

msgspec reads a struct's annotations when its class is created, so these live in a module that stays
interpreted: `make compile` leaves it out, and the compiled modules use the classes from here.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Chunk", "ChunkChoice", "ChunkDelta", "Envelope", "Usage"]


class Usage(msgspec.Struct):
    """An answer's token counts under the names every adapter's usage has: OpenAI's `prompt_tokens` and
    `completion_tokens` decoded straight into `input` and `output`, plain fields (governance, pricing and
    the request log read them on every answer; a property was a Python call per read)."""

    input: int = msgspec.field(default=0, name="prompt_tokens")
    output: int = msgspec.field(default=0, name="completion_tokens")


class Envelope(msgspec.Struct):
    """Decoding into this validates the whole body's JSON syntax but materialises only `usage`; the answer
    (`choices`, or `data` for embeddings) and `error` are kept as raw JSON, only to see whether they are there."""

    usage: Usage | None = None
    choices: msgspec.Raw = msgspec.Raw()
    data: msgspec.Raw = msgspec.Raw()
    error: msgspec.Raw = msgspec.Raw()


class ChunkDelta(msgspec.Struct):
    content: Any = None
    reasoning_content: Any = None
    reasoning: Any = None
    tool_calls: Any = None


class ChunkChoice(msgspec.Struct):
    delta: ChunkDelta | None = None
    finish_reason: Any = None


class Chunk(msgspec.Struct):
    """The fields of a `chat.completion.chunk` a reader looks at: decoded straight into slots, the rest
    (ids, logprobs, fingerprints …) skipped by the decoder. Values are checked as the dict path checked
    them, so a provider's odd value (`"content": null`, a list) is ignored the same way."""

    id: Any = ""
    model: Any = ""
    choices: list[ChunkChoice] | None = None
    usage: Any = None
    error: Any = None
