"""Bedrock's InvokeModel as one object, `BEDROCK_INVOKE`: `/model/{modelId}/invoke` and
`/invoke-with-response-stream`, the model's own body passed through to Bedrock targets (no other adapter serves
the `invoke` operation), and its answers relayed as they came.

A client format (boto3's `invoke_model` / `invoke_model_with_response_stream`) and the format the Bedrock adapter
serves the operation in (`BedrockProvider.formats`), so an answer always reaches the client untranslated. Errors
are Bedrock's, as for Converse (both extend `format.BedrockClient`). Relayed-only: a `formats.base.ClientFormat`
and not a `Converses` — it has no canonical-model method at all, and its endpoint rows say so
(`Endpoint.converses` is None), so mypy sees that nothing translates it.

A stream is AWS event-stream frames, each `chunk` event carrying base64 `bytes` of one of the model's own events
(Claude's `message_start` … `message_stop`), the last one with `amazon-bedrock-invocationMetrics` appended by
Bedrock. It is relayed frame by frame, untouched (`RelaysFrames`: `relay.frames`): `InvokeFrames` cuts the
bytes into whole frames — so a break never leaves half a frame before the exception frame that ends the
client's stream — and reads each (with botocore's decoder) for what the gateway needs: the first content
(failover is invisible before it), the usage (Claude's `message_start` / `message_delta`, or Bedrock's metrics),
the end, and an exception the upstream sent mid-stream.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Any

import msgspec

from sidestep.core.model import Event, Finish, Usage, merge_usage
from sidestep.formats.anthropic_messages.convert import FINISH_IN
from sidestep.formats.anthropic_messages.convert import read_usage as claude_usage
from sidestep.formats.bedrock_converse.format import BedrockClient
from sidestep.formats.body import decode_body
from sidestep.formats.request import ParsedRequest

__all__ = ["BEDROCK_INVOKE", "MAX_FRAME", "BedrockInvoke", "InvokeFrames"]

_decode = msgspec.json.Decoder().decode
# botocore's own bounds: a payload of at most 16 MiB, headers of at most 128 KiB, plus prelude and CRCs.
MAX_FRAME = 16 * 1024 * 1024 + 128 * 1024 + 16
_METRICS = "amazon-bedrock-invocationMetrics"
_TEXT_FIELDS = ("outputText", "generation", "completion", "text")  # Titan, Llama, Claude's text completions …


class BedrockInvoke(BedrockClient):
    """`/model/{modelId}/invoke` and `/invoke-with-response-stream`: the model's own body, passed through."""

    name = "bedrock-invoke"

    def parse_body(self, raw: bytes, operation: str) -> ParsedRequest:
        """Only checked to be a JSON object: the body is the model's, and the model checks it."""
        return ParsedRequest(decode_body(raw), [], False)

    # -- streams: frames relayed as they came ------------------------------------------------------------------

    def stream_reader(self) -> InvokeFrames:
        return InvokeFrames()

    def frame_reader(self) -> InvokeFrames:
        """`RelaysFrames`: the reader `relay.frames` cuts and reads the stream with."""
        return InvokeFrames()

    def stream_complete(self, tail: bytes) -> bool:
        return False  # never judged by its last bytes: `InvokeFrames.ended` says (a frame stream is not forwarded)


class InvokeFrames:
    """InvokeModelWithResponseStream bytes in; whole frames out (`frames`) or the events they mean (`feed`,
    the `Reader` the executor finds the first content with). Frames may be split anywhere."""

    def __init__(self) -> None:
        from botocore.eventstream import EventStreamBuffer  # optional dependency: sidestep[bedrock]

        self._buffer = EventStreamBuffer()
        self._pending = b""
        self._calls: dict[int, int] = {}  # content block index → tool call index
        self.usage: Usage | None = None
        self.ended = False  # the model's last event (Claude's `message_stop`, or Bedrock's metrics) went by
        self.failure: str | None = None  # an exception frame the upstream sent
        self.chars = 0  # answer text seen: an estimate's base when the stream ends without usage

    def feed(self, piece: bytes) -> list[Event]:
        events: list[Event] = []
        for whole in self._split(piece):
            events += self._read(whole)
        return events

    def frames(self, piece: bytes) -> bytes:
        """The whole frames in what has arrived so far, as they came; an incomplete last one is held back."""
        wholes = self._split(piece)
        for whole in wholes:
            self._read(whole)
        return b"".join(wholes)

    def _split(self, piece: bytes) -> list[bytes]:
        data = self._pending + piece if self._pending else piece
        wholes: list[bytes] = []
        at = 0
        while len(data) - at >= 4:
            (total,) = struct.unpack_from("!I", data, at)
            if total < 16 or total > MAX_FRAME:
                raise ValueError(f"malformed event-stream frame: a length of {total} bytes")
            if len(data) - at < total:
                break
            wholes.append(data[at : at + total])
            at += total
        self._pending = data[at:]
        return wholes

    def _read(self, whole: bytes) -> list[Event]:
        from botocore.eventstream import ParserError

        self._buffer.add_data(whole)
        try:
            messages = list(self._buffer)
        except ParserError as exc:
            raise ValueError(f"malformed event-stream frame: {exc}") from exc
        events: list[Event] = []
        for message in messages:
            headers = message.headers
            if headers.get(":message-type", "event") != "event":  # an exception or error frame
                name = str(headers.get(":exception-type") or headers.get(":error-code") or "error")
                text = _message(message.payload) or name
                self.failure = f"{name}: {text}"
                events.append(Event(kind="error", text=self.failure, error_type=name))
            elif headers.get(":event-type") == "chunk":
                self._chunk(_chunk_data(message.payload), events)
        for event in events:
            self._note(event)
        return events

    def _note(self, event: Event) -> None:
        if event.kind == "usage" and event.usage is not None:
            self.usage = merge_usage(self.usage, event.usage)
        elif event.kind == "end":
            self.ended = True
        elif event.is_content:
            self.chars += len(event.text) + len(event.name)

    def _chunk(self, data: dict[str, Any], events: list[Event]) -> None:
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message")
            events.append(Event(kind="start", id=str(message.get("id", "")) if isinstance(message, dict) else ""))
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                events.append(Event(kind="usage", usage=claude_usage(usage)))
        elif kind == "content_block_start":
            block = data.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use":
                index = self._calls.setdefault(_int(data.get("index")), len(self._calls))
                events.append(
                    Event(kind="tool_start", index=index, id=str(block.get("id", "")), name=str(block.get("name", "")))
                )
        elif kind == "content_block_delta":
            self._delta(_int(data.get("index")), data.get("delta"), events)
        elif kind == "message_delta":
            usage = data.get("usage")
            if isinstance(usage, dict):
                events.append(Event(kind="usage", usage=claude_usage(usage)))
            delta = data.get("delta")
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            events.append(Event(kind="finish", finish=_finish(stop)))
        elif kind == "error":
            error = data.get("error")
            text = str(error.get("message", "")) if isinstance(error, dict) else ""
            events.append(Event(kind="error", text=text or "the model's stream failed", error_type="model_error"))
        elif kind is None:  # another model's own event (Titan, Llama …): content, with its text when it has one
            text = next((str(data[name]) for name in _TEXT_FIELDS if isinstance(data.get(name), str)), "")
            events.append(Event(kind="text", text=text))
        metrics = data.get(_METRICS)
        if isinstance(metrics, dict):  # Bedrock appends them to the model's last event
            events.append(Event(kind="usage", usage=_metrics_usage(metrics)))
        if kind == "message_stop" or isinstance(metrics, dict):
            events.append(Event(kind="end"))

    def _delta(self, block: int, delta: Any, events: list[Event]) -> None:
        if not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta":
            events.append(Event(kind="text", text=str(delta.get("text", ""))))
        elif kind == "input_json_delta":
            index = self._calls.setdefault(block, len(self._calls))
            events.append(Event(kind="tool_args", index=index, text=str(delta.get("partial_json", ""))))
        elif kind == "thinking_delta":
            events.append(Event(kind="thinking", text=str(delta.get("thinking", ""))))
        elif kind == "signature_delta":
            events.append(Event(kind="thinking", signature=str(delta.get("signature", ""))))
        else:
            events.append(Event(kind="text"))  # a delta of a kind not known here is still the answer


def _chunk_data(payload: bytes) -> dict[str, Any]:
    """The model's event in a `chunk` frame: `{"bytes": base64 of its JSON}`."""
    try:
        outer = _decode(payload)
        raw = outer.get("bytes") if isinstance(outer, dict) else None
        data = _decode(base64.b64decode(raw, validate=True)) if isinstance(raw, str) else None
    except (msgspec.DecodeError, binascii.Error) as exc:
        raise ValueError(f"malformed chunk event: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("malformed chunk event: its bytes are not a JSON object")
    return data


def _message(payload: bytes) -> str:
    try:
        data = _decode(payload) if payload else None
    except msgspec.DecodeError:
        return ""
    if isinstance(data, dict):
        return str(data.get("message") or data.get("Message") or "")
    return ""


def _metrics_usage(metrics: dict[str, Any]) -> Usage:
    return Usage(
        input=_int(metrics.get("inputTokenCount")),
        output=_int(metrics.get("outputTokenCount")),
        cached=_int(metrics.get("cacheReadInputTokenCount")),
        cache_write=_int(metrics.get("cacheWriteInputTokenCount")),
    )


def _finish(stop: Any) -> Finish:
    return FINISH_IN.get(stop, "stop") if isinstance(stop, str) else "stop"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


BEDROCK_INVOKE = BedrockInvoke()
