"""Gemini streams as Google's REST API answers them without `alt=sse`: one JSON array (`application/json`,
chunked) whose elements are the `GenerateContentResponse`s the SSE events carry — `[{…}`, then `,\r\n{…}` for
each event, then `]`. curl users, REST clients and the older SDKs (google-api-core's REST transport, which sends
`$alt=json;enum-encoding=int`) read it; google-genai asks for `alt=sse`.

`GEMINI_ARRAY` is the client format of such a request, picked once per request from its query string
(`stream_format`, the `:streamGenerateContent` row of `sidestep.endpoints`); everything but the stream's shape is
`GEMINI`'s. Its streams are framed (`formats.base.FramedStreams`), so never relayed as bytes:

- the `[` goes out with the response head (`stream_opening`), so that the keep-alives sent while the first token
  is awaited are whitespace inside the array (google-api-core's parser wants `[` as the body's first byte);
- a Gemini target is still asked for SSE (`alt=sse`: its stream reader, end-of-stream rule and usage read SSE) and
  each event's payload goes out as it came, as an element (`Reframed`): nothing Gemini sends is lost on the way
  through the canonical model (safety ratings, grounding, thought signatures);
- any other target's stream is translated (`ArrayWriter`: the SSE writer's events, framed as elements);
- a failure after the head ends the array with an error element, `{"error": {"code", "message", "status"}}`,
  then `]`: the body stays one valid JSON document, and a client that parses elements as they come meets the
  error as the last one.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

import msgspec

from sidestep.core.format import Translator, Wire, Writer
from sidestep.core.model import Event, Usage, merge_usage
from sidestep.errors import BadRequest
from sidestep.formats.base import Converses
from sidestep.formats.gemini.format import GEMINI, Gemini
from sidestep.formats.gemini.stream import StreamReader, StreamWriter, error_payload
from sidestep.formats.sse import SSESplitter

__all__ = ["GEMINI_ARRAY", "ArrayWriter", "GeminiArray", "Reframed", "stream_format"]

_decode = msgspec.json.Decoder().decode
_SEPARATOR = b",\r\n"  # as Google separates the elements
_ALT = ("alt", "$alt")  # `$alt` is how Google's generated REST clients spell it
_SHOWN = 40  # characters of a refused `alt` value repeated in the error


class ArrayWriter(StreamWriter):
    """Canonical events in, array elements out: the events `StreamWriter` writes, each an element after the
    opening `[` (sent with the head), and `]` after the last one or after an error."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self._elements = 0
        self._closed = False

    def element(self, payload: bytes) -> bytes:
        """One element (a JSON object's bytes), separated from the one before; nothing once the array is closed."""
        if self._closed:
            return b""
        self._elements += 1
        return payload if self._elements == 1 else _SEPARATOR + payload

    def close(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        return b"]"

    def write(self, event: Event) -> bytes:
        """An error event is the array's last element, as the end is (a continuation after it writes nothing:
        the client has read the error)."""
        out = super().write(event)
        return out + self.close() if event.kind in ("end", "error") else out

    def error(self, message: str, code: str = "stream_interrupted") -> bytes:
        return self.element(error_payload(400 if code == "upstream_rejected" else 503, message)) + self.close()

    def _frame(self, payload: bytes) -> bytes:
        return self.element(payload)


class Reframed:
    """A Gemini target's SSE stream as array elements: each event's payload goes out as it came. Its items are
    read as well, for what a translated stream tells the relay: whether it ended (`finishReason`), its usage and
    the characters of answer relayed. The target's own error event is relayed as the last element (the stream
    still counts as broken: it did not end)."""

    def __init__(self, writer: ArrayWriter) -> None:
        self.writer = writer
        self.ended = False
        self.usage: Usage | None = None
        self._chars = 0
        self._splitter = SSESplitter()
        self._reader = StreamReader()

    def feed(self, piece: bytes) -> bytes:
        out = b""
        for data in self._splitter.feed(piece):
            item = _decode(data)
            if not isinstance(item, dict):
                continue  # not a GenerateContentResponse: nothing a client could read
            events: list[Event] = []
            self._reader.item(item, events)
            last = False  # the end, or the target's error event: the array's last element
            for event in events:
                if event.kind in ("end", "error"):
                    self.ended, last = self.ended or event.kind == "end", True
                elif event.kind == "usage" and event.usage is not None:
                    self.usage = merge_usage(self.usage, event.usage)
                else:
                    self._chars += len(event.text)
            out += self.writer.element(data)
            if last:
                out += self.writer.close()
        return out

    def relayed_chars(self) -> int:
        return self._chars


class GeminiArray(Gemini):
    """`streamGenerateContent` without `alt=sse` (or with `alt=json`): `GEMINI` in every way but the stream."""

    stream_media_type = "application/json"  # `FramedStreams`: re-framed event by event, never relayed as bytes
    stream_opening = b"["  # sent with the response head, before any keep-alive

    def stream_writer(self, model: str, include_usage: bool) -> ArrayWriter:
        return ArrayWriter(model)

    def stream_error(self, message: str, code: str = "stream_interrupted") -> bytes:
        """The array's only element, when no target answered after the head went out (with the `[`)."""
        return error_payload(400 if code == "upstream_rejected" else 503, message) + b"]"

    def stream_translator(self, source: Wire, writer: Writer) -> Translator | None:
        """A Gemini target's events re-framed as they came; None: translated through the canonical model."""
        return Reframed(writer) if source is GEMINI and isinstance(writer, ArrayWriter) else None


GEMINI_ARRAY = GeminiArray()


def stream_format(query: str) -> Converses:
    """The client format of a `streamGenerateContent` request, from its query string: `alt=sse` → `GEMINI` (SSE);
    no `alt`, or `alt=json` → `GEMINI_ARRAY`, as Google's default. Parameters after `;` (`json;enum-encoding=int`)
    are accepted and not acted on: enums go out as names, which proto JSON parsers read either way. Any other
    value, or `alt` given twice, is a 400 in Google's error shape."""
    values = [value for name, value in _fields(query) if name in _ALT]
    if len(values) > 1:
        raise BadRequest("Invalid value at 'alt': given more than once; send one alt=sse or alt=json.", param="alt")
    if not values:
        return GEMINI_ARRAY
    kind = values[0].partition(";")[0]
    if kind == "sse":
        return GEMINI
    if kind == "json":
        return GEMINI_ARRAY
    shown = values[0][:_SHOWN] + ("…" if len(values[0]) > _SHOWN else "")
    raise BadRequest(
        f"Invalid value at 'alt' ({shown!r}): use alt=sse (Server-Sent Events) or alt=json (a JSON array, the"
        " default).",
        param="alt",
    )


def _fields(query: str) -> list[tuple[str, str]]:
    """The query's `name=value` pairs, percent-decoded (`%24alt` is `$alt`)."""
    pairs: list[tuple[str, str]] = []
    for item in query.split("&") if query else ():
        name, _, value = item.partition("=")
        pairs.append((unquote_plus(name, errors="replace"), unquote_plus(value, errors="replace")))
    return pairs
