"""Client APIs that are relayed, never translated: rerank, moderations, image generation, audio transcription
and speech. One class, `PassThrough`; one object per API.

No canonical model covers these answers (scores, flags, images, audio), so a request goes only to targets whose
API serves the same operation in the same shape (`supports(operation)` on the adapter, `serves` on the catalog
row), and the answer comes back as the upstream sent it: its bytes and its content type. What the gateway reads
of a request is what routing needs — the model, whether it streams, the fields without which no provider would
answer — checked here so that a bad request is a 400 in the client's error shape before any target is tried.

- JSON bodies (`rerank`, `moderations`, `images`, `speech`) are decoded one level deep (`formats.body`), like chat.
- A `multipart/form-data` body (`transcriptions`) is parsed with `python-multipart` only to find its `model` and
  `stream` fields; the body travels upstream byte for byte, same boundary, with only the model field's value
  replaced by the target's model (`Multipart.for_model`). The boundary is read from the body's first line.
- A binary answer (`speech`, and any answer these APIs stream) is relayed as opaque bytes: the stream reader
  calls every piece content (the first byte ends the failover window), there is no in-stream error event (an
  upstream break cuts the client's connection, so the client sees a truncated body, not a short complete one),
  and the transport's framing, not a marker, says whether the upstream body was complete.

Errors come in OpenAI's shape, except rerank's, which come in Cohere's (`{"message": …}`): rerank's request and
answer are Cohere's, and the Cohere SDK is its client. A `PassThrough` is a `formats.base.ClientFormat` and not a
`Converses`: it has no canonical-model method (reading or writing requests, answers, streams, a stream's usage),
and its endpoint rows say so (`Endpoint.converses` is None), so mypy sees that nothing translates these APIs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from sidestep.core.model import Event, Usage
from sidestep.errors import BadRequest, SidestepError, UpstreamError
from sidestep.formats.body import decode_body, field
from sidestep.formats.openai_chat.format import error_payload
from sidestep.formats.request import ParsedRequest, models_of

__all__ = [
    "MULTIPART",
    "OPENAI_IMAGES",
    "OPENAI_MODERATIONS",
    "OPENAI_SPEECH",
    "OPENAI_TRANSCRIPTIONS",
    "RERANK",
    "Multipart",
    "PassThrough",
    "request_usage",
]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
MULTIPART = "\x00multipart"  # the parsed body's key for a multipart request (no JSON field can collide: not JSON)
_MAX_PARTS = 64
_MAX_FIELD = 1024  # bytes of a text field the gateway reads (model, stream)
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{1,70}")  # RFC 2046's bchars
_CONTENT = [Event(kind="text")]


@dataclass(frozen=True, slots=True)
class Multipart:
    """A multipart/form-data body as it came, and where its `model` field's value is."""

    raw: bytes
    boundary: bytes
    model_at: tuple[int, int]

    @property
    def content_type(self) -> str:
        return "multipart/form-data; boundary=" + self.boundary.decode("ascii")

    def for_model(self, model: str) -> bytes:
        """The body with the model field's value replaced: every other byte is the client's."""
        start, end = self.model_at
        value = model.encode()
        return self.raw if self.raw[start:end] == value else self.raw[:start] + value + self.raw[end:]


class _Opaque:
    """A stream read as bytes, not events: every piece is content."""

    def feed(self, piece: bytes) -> list[Event]:
        return _CONTENT if piece else []


class PassThrough:
    """A client API served only by targets that speak it (see the module docstring)."""

    # Answers keep the upstream's content type and streams are opaque bytes; what `endpoints.Endpoint.opaque` reads.
    relays_bytes = True

    def __init__(
        self,
        name: str,
        *,
        required: tuple[tuple[str, str], ...] = (),
        streams: bool | None = None,
        multipart: bool = False,
        errors: str = "openai",
        units_from: str | None = None,
    ) -> None:
        """`required`: (field, kind) pairs a request must have, kind "text" (a non-empty string), "list" (a
        non-empty array), "text|list" or "any"; `streams`: True always (speech), False never, None as the body's
        `stream` says; `errors`: "openai" or "cohere", the error shape its clients read; `units_from`: the text
        field whose characters are the billed units when the answer reports none (speech's `input`)."""
        self.name = name
        self._required = required
        self._streams = streams
        self._multipart = multipart
        self._cohere_errors = errors == "cohere"
        self._units_from = units_from

    # -- what a client sent ------------------------------------------------------------------------------

    def parse_body(self, raw: bytes, operation: str) -> ParsedRequest:
        if self._multipart:
            body = _multipart_body(raw)
        else:
            body = decode_body(raw)
            for name, kind in self._required:
                _check(body, name, kind)
            if "top_n" in body:
                top_n = field(body, "top_n")
                if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
                    raise BadRequest("'top_n' must be a positive integer.", param="top_n")
        models = models_of(body)
        stream = self._streams
        if stream is None:
            asked: Any = field(body, "stream", False)  # not yet a bool: compiled code checks what it assigns
            if not isinstance(asked, bool):
                raise BadRequest("'stream' must be a boolean.", param="stream")
            stream = asked
        return ParsedRequest(body, models, stream)

    def request_usage(self, body: dict[str, Any]) -> Usage | None:
        """What a request costs when its answer reports nothing (speech audio): characters of `units_from`."""
        if self._units_from is None:
            return None
        text = field(body, self._units_from)
        return Usage(units=float(len(text))) if isinstance(text, str) else None

    def end_user(self, body: dict[str, Any]) -> str | None:
        user = field(body, "user") if "user" in body else None
        return user if isinstance(user, str) and user else None

    def output_limit(self, body: dict[str, Any]) -> int | None:
        return None  # these APIs answer with no tokens to limit (images, audio, scores …)

    # -- streams: opaque bytes -----------------------------------------------------------------------------

    def stream_reader(self) -> _Opaque:
        return _Opaque()

    def stream_complete(self, tail: bytes) -> bool:
        return True  # a body cut short fails in the transport (its length or chunked framing), not here

    def stream_error(self, message: str, code: str = "stream_interrupted") -> bytes:
        return b""  # nothing can be said inside audio: the relay cuts the connection instead

    # -- errors --------------------------------------------------------------------------------------------

    def error_body(self, exc: SidestepError) -> bytes:
        if self._cohere_errors:
            return _encode({"message": exc.message})
        return error_payload(exc.status, exc.message, code=exc.code, param=exc.param)

    def upstream_error_body(self, error: UpstreamError) -> bytes:
        """The upstream's error body when it is already in the client's shape, else its message rewrapped."""
        try:
            data = _decode(error.body) if error.body else None
        except msgspec.DecodeError:
            data = None
        if isinstance(data, dict):
            if self._cohere_errors and isinstance(data.get("message"), str):
                return error.body
            inner = data.get("error")
            if not self._cohere_errors and isinstance(inner, dict) and "message" in inner:
                return error.body
        return self.server_error_body(error.status, error.message)

    def server_error_body(self, status: int, message: str) -> bytes:
        if self._cohere_errors:
            return _encode({"message": message})
        return error_payload(status, message)


def request_usage(client: object, body: dict[str, Any]) -> Usage | None:
    return client.request_usage(body) if isinstance(client, PassThrough) else None


def _check(body: dict[str, Any], name: str, kind: str) -> None:
    if name not in body:
        raise BadRequest(f"'{name}' is required.", param=name)
    value = field(body, name)
    text = isinstance(value, str) and bool(value)
    listed = isinstance(value, list) and bool(value)
    ok = {"text": text, "list": listed, "text|list": text or listed, "any": value is not None}[kind]
    if not ok:
        wanted = {
            "text": "a non-empty string",
            "list": "a non-empty array",
            "text|list": "a non-empty string or array",
            "any": "present",
        }[kind]
        raise BadRequest(f"'{name}' must be {wanted}.", param=name)


def _multipart_body(raw: bytes) -> dict[str, Any]:
    """`model` and `stream` of a multipart/form-data body, and the body itself (`MULTIPART`)."""
    boundary = _boundary(raw)
    try:
        from python_multipart.exceptions import FormParserError
        from python_multipart.multipart import MultipartParser
    except ImportError:  # pragma: no cover - the `audio` extra is not installed
        raise BadRequest(
            "This gateway cannot read multipart/form-data bodies: install sidestep[audio].", code="not_supported"
        ) from None
    reader = _FormReader(raw)
    parser = MultipartParser(boundary, reader.callbacks(), max_size=len(raw))  # type: ignore[arg-type]
    try:
        parser.write(raw)
        parser.finalize()
    except (FormParserError, ValueError) as exc:
        raise BadRequest(f"The multipart/form-data body is malformed: {exc}") from exc
    if not reader.done:
        raise BadRequest("The multipart/form-data body is malformed: it does not end with its closing boundary.")
    if "file" not in reader.seen:
        raise BadRequest("'file' is required: the audio to transcribe, as a file part.", param="file")
    model_at = reader.fields.get("model")
    if model_at is None:
        raise BadRequest("'model' is required and must be a non-empty string.", param="model")
    body: dict[str, Any] = {"model": _text(raw, model_at, "model"), MULTIPART: Multipart(raw, boundary, model_at)}
    stream_at = reader.fields.get("stream")
    if stream_at is not None:
        stream = _text(raw, stream_at, "stream").strip().lower()
        if stream not in ("true", "false"):
            raise BadRequest("'stream' must be a boolean.", param="stream")
        body["stream"] = stream == "true"
    return body


def _boundary(raw: bytes) -> bytes:
    line_end = raw.find(b"\r\n", 0, 80)
    boundary = raw[2:line_end] if raw.startswith(b"--") and line_end > 2 else b""
    if not _BOUNDARY.fullmatch(boundary) or boundary.endswith(b" "):
        raise BadRequest(
            "The request body must be multipart/form-data, starting with its boundary (a 'file' part and a"
            " 'model' field)."
        )
    return boundary


def _text(raw: bytes, at: tuple[int, int], name: str) -> str:
    start, end = at
    if end - start > _MAX_FIELD:
        raise BadRequest(f"'{name}' is longer than {_MAX_FIELD} bytes.", param=name)
    try:
        return raw[start:end].decode()
    except UnicodeDecodeError:
        raise BadRequest(f"'{name}' is not valid UTF-8.", param=name) from None


class _FormReader:
    """python-multipart callbacks that note each part's name and where the text fields' values are."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._header = b""
        self._value = b""
        self._name: str | None = None
        self._span: tuple[int, int] | None = None
        self._broken = False
        self.parts = 0
        self.seen: set[str] = set()
        self.fields: dict[str, tuple[int, int]] = {}
        self.done = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_end": self._finished,
        }

    def _begin(self) -> None:
        self.parts += 1
        if self.parts > _MAX_PARTS:
            raise ValueError(f"more than {_MAX_PARTS} parts")
        self._name, self._span, self._broken = None, None, False
        self._header = self._value = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        from python_multipart.multipart import parse_options_header

        if self._header.lower() == b"content-disposition":
            _, options = parse_options_header(self._value)
            name = options.get(b"name")
            if name is not None:
                self._name = name.decode("utf-8", "replace")
        self._header = self._value = b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._name not in ("model", "stream") or start == end:
            return
        if data is not self._raw:  # a piece the parser re-buffered: the span is not in the body
            self._broken = True
        elif self._span is None:
            self._span = (start, end)
        elif self._span[1] == start:
            self._span = (self._span[0], end)
        else:
            self._broken = True

    def _end(self) -> None:
        name = self._name
        if name is None:
            return
        if name in self.seen and name in ("model", "stream"):
            raise ValueError(f"the '{name}' field is sent twice")
        self.seen.add(name)
        if name in ("model", "stream"):
            if self._broken:
                raise ValueError(f"the '{name}' field could not be read")
            if self._span is not None:
                self.fields[name] = self._span

    def _finished(self) -> None:
        self.done = True


OPENAI_MODERATIONS = PassThrough("openai-moderations", required=(("input", "text|list"),), streams=False)
OPENAI_IMAGES = PassThrough("openai-images", required=(("prompt", "text"),))
OPENAI_TRANSCRIPTIONS = PassThrough("openai-transcriptions", multipart=True)
OPENAI_SPEECH = PassThrough(
    "openai-speech", required=(("input", "text"), ("voice", "any")), streams=True, units_from="input"
)
RERANK = PassThrough("rerank", required=(("query", "text"), ("documents", "list")), streams=False, errors="cohere")
