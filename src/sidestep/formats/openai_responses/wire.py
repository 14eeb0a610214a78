"""The Responses API's wire shapes that msgspec decodes into: what an adapter checks in a passed-through
answer (an `output`, no `error`, its `status`) and its usage; everything else is skipped by the decoder.

msgspec reads a struct's annotations when its class is created, so these live in a module that stays
interpreted (tools/compile.py's INTERPRETED), as `formats/openai_chat/wire.py` does.
"""

from __future__ import annotations

import msgspec

__all__ = ["ResponsesEnvelope", "ResponsesUsage"]


class ResponsesUsage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    @property
    def input(self) -> int:
        return self.input_tokens

    @property
    def output(self) -> int:
        return self.output_tokens


class ResponsesEnvelope(msgspec.Struct):
    """Decoding into this validates the whole body's JSON syntax; `output` and `error` stay raw JSON, only to
    see whether they are there."""

    object: str = ""
    status: str = ""
    usage: ResponsesUsage | None = None
    output: msgspec.Raw = msgspec.Raw()
    error: msgspec.Raw = msgspec.Raw()
