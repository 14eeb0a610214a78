"""Request bodies decoded only as deep as needed.

The fast path reads a handful of top-level fields (model, stream, fallbacks …) and forwards the rest. A body
is decoded to its top-level mapping with every value kept as `msgspec.Raw` — the nested JSON is validated
and skipped, not built — and a field is decoded the first time something asks for it (`field`). Encoding
such a mapping writes the raw values back verbatim, so a long conversation costs a scan, not a rebuild.

`output_limit` and `limit_of` read a declared output limit (`max_tokens` and its kin) for the client formats'
`output_limit`: a whole number from 1 to `MAX_OUTPUT_LIMIT`, else None — never an error, whatever was sent.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from sidestep.errors import BadRequest

__all__ = ["MAX_OUTPUT_LIMIT", "decode_body", "field", "is_nonempty_array", "limit_of", "materialize", "output_limit"]

_top = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode = msgspec.json.Decoder().decode
# The largest output limit an API's schema admits (Gemini's and Bedrock's are int32): a larger one is no limit
# any target would take, so it declares nothing.
MAX_OUTPUT_LIMIT = 2**31 - 1
_limit = msgspec.json.Decoder(Annotated[int, msgspec.Meta(ge=1, le=MAX_OUTPUT_LIMIT)]).decode  # checked in C
_TYPE_NAMES = {b"[": "list", b'"': "str", b"t": "bool", b"f": "bool", b"n": "NoneType"}


def decode_body(raw: bytes) -> dict[str, Any]:
    """The top-level object of a JSON body, values left raw; a clear 400 for anything else."""
    if not raw:
        raise BadRequest("The request body is empty; send a JSON object.")
    try:
        return _top(raw)
    except msgspec.ValidationError as not_object:  # valid JSON, but not an object
        kind = _TYPE_NAMES.get(raw.lstrip()[:1], "number")
        raise BadRequest(f"The request body must be a JSON object, got {kind}.") from not_object
    except msgspec.DecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from exc
    except RecursionError:  # msgspec checks depth even in the values it keeps raw: deeper never gets past here
        raise BadRequest("The request body is JSON nested too deeply.") from None


def field(body: dict[str, Any], name: str, default: Any = None) -> Any:
    """A field's value, decoded (and remembered) on first use."""
    value = body.get(name, default)
    if isinstance(value, msgspec.Raw):
        value = body[name] = _decode(value)
    return value


def is_nonempty_array(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if isinstance(value, msgspec.Raw):
        view = memoryview(value)  # no copy of what may be a long conversation
        if not view or view[0] != 0x5B:  # "["
            return False
        after = bytes(view[1:65]).lstrip() or bytes(view[1:]).lstrip()
        return after[:1] != b"]"
    return isinstance(value, list) and bool(value)


def materialize(body: dict[str, Any]) -> dict[str, Any]:
    """Every field decoded: for translation, which reads the whole request."""
    return {k: _decode(v) if isinstance(v, msgspec.Raw) else v for k, v in body.items()}


def output_limit(body: dict[str, Any], name: str) -> int | None:
    """The output limit a top-level field declares, or None (absent, null, or anything but a whole number from 1
    to `MAX_OUTPUT_LIMIT`: a bool, a float, a string, a negative or huge number, an array …). Never raises. A raw
    value is checked as it is decoded, and not kept: nothing else on a relayed request reads it."""
    value = body.get(name)
    if isinstance(value, msgspec.Raw):
        try:
            return _limit(value)
        except msgspec.DecodeError:  # a ValidationError: the JSON itself was checked when the body was read
            return None
    return limit_of(value)


def limit_of(value: Any) -> int | None:
    """`value` if it is an output limit (a whole number from 1 to `MAX_OUTPUT_LIMIT`, not a bool), else None."""
    return value if type(value) is int and 0 < value <= MAX_OUTPUT_LIMIT else None
