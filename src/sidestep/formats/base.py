"""What a format is: the Protocols a format object satisfies, one per capability.

Every format (`Wire`, drawn in `sidestep.core.format` so that routing can name it) has a name and reads its streams
into canonical events; a format a provider speaks (`Format`) also writes requests and reads answers through the
canonical model. A format that clients speak (`ClientFormat`) parses their bodies, renders errors (as body bytes:
formats do not know the HTTP server) and in-stream errors in its own shape, says when a relayed stream is complete
and who the end user is: what every client API does, the relayed-only ones (`formats.passthrough`) included. A
client format that converses through the canonical model (`Converses`: every one but the relayed-only APIs) also
reads its clients' requests and writes answers and streams back, and reads its streams' usage. The route holds
that side as its own typed value, found once per endpoint row (`sidestep.endpoints.Endpoint.converses`), so a
relayed-only format has no canonical method at all — not a stub raising "unsupported" — and mypy sees that none is
called on it. Smaller abilities are protocols of their own (`Seams`, `ReadsEmbeddings`, `WritesEmbeddings`,
`FramedStreams`, `NamesErrors`, `ListsModels`, `Continues`, `ReadsEmbeddingInputs`, `CountsTokens`, `Comments`,
`ReadsNeeds`, `MarksUsage`, `EndMarks`, `ReopensStreams`, `RelaysFrames`, `TranslatesStreams`); a format
without one simply does not have the method. They are checked with `isinstance` where a format is chosen (the
endpoint table) or on the rare paths that need them (a continued stream, a broken one, embeddings and token counts
across formats, a stream's notes, a framed stream), never on the usual one (a forward relay reads `end_marks` as an
attribute, once per stream).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard, runtime_checkable

from sidestep.core.format import Format, Reader, Translator, Wire, Writer
from sidestep.core.model import ChatRequest, ChatResponse, Usage
from sidestep.errors import SidestepError, UpstreamError
from sidestep.formats.request import ParsedRequest
from sidestep.formats.sse import sse_comment

__all__ = [
    "CONTINUE_PROMPT",
    "ClientFormat",
    "Comments",
    "Continues",
    "Converses",
    "CountsTokens",
    "EndMarks",
    "Format",
    "FrameReader",
    "FramedStreams",
    "ListsModels",
    "MarksUsage",
    "ModelCard",
    "NamesErrors",
    "Reader",
    "ReadsEmbeddingInputs",
    "ReadsEmbeddings",
    "ReadsNeeds",
    "RefusesPaths",
    "RelaysFrames",
    "ReopensStreams",
    "Seam",
    "Seams",
    "TranslatesStreams",
    "Translator",
    "Wire",
    "Writer",
    "WritesEmbeddings",
    "capability",
    "frame_reader",
    "stream_comment",
    "stream_headers",
    "stream_media_type",
    "stream_opening",
    "translatable",
]


# What a continuation asks the next target, after the text already sent (`mid_stream: continue`).
CONTINUE_PROMPT = "Continue exactly where your previous message stopped. Do not repeat anything already written."


class Seam(Protocol):
    def feed(self, piece: bytes) -> bytes: ...


@runtime_checkable
class ClientFormat(Wire, Protocol):
    """A wire API clients speak to the gateway: what every one does, relayed-only APIs included."""

    def parse_body(self, raw: bytes, operation: str) -> ParsedRequest:
        """What routing needs, validated by the API's own rules; every other field stays undecoded."""
        ...

    def stream_complete(self, tail: bytes) -> bool:
        """The end-of-stream rule of a stream relayed as bytes: whether its last bytes (24 are kept) end it."""
        ...

    def stream_error(self, message: str, code: str = "stream_interrupted") -> bytes:
        """The event that ends a stream whose upstream failed after content was sent (the SDK raises on it);
        empty when the API has none (opaque audio: the relay cuts the connection instead)."""
        ...

    def error_body(self, exc: SidestepError) -> bytes:
        """A gateway error (its status is `exc.status`) as the API's JSON error body."""
        ...

    def upstream_error_body(self, error: UpstreamError) -> bytes:
        """A caller error from upstream, answered with its status: the upstream's body when it is already in
        this API's error shape, else the message rewrapped in it."""
        ...

    def server_error_body(self, status: int, message: str) -> bytes:
        """Errors the HTTP layer raises itself (413, 431, malformed HTTP …)."""
        ...

    def end_user(self, body: dict[str, Any]) -> str | None:
        """The end user the request names, if any (the request log records it)."""
        ...

    def output_limit(self, body: dict[str, Any]) -> int | None:
        """How many tokens the request lets its answer have, where the API names that limit (`max_tokens`,
        `max_output_tokens`, `generationConfig.maxOutputTokens` …); None when it declares none or a value that
        is no limit (`formats.body.output_limit`). Never raises: governance reserves budget by it."""
        ...


@runtime_checkable
class Converses(ClientFormat, Format, Protocol):
    """A client format that converses through the canonical model: its requests are read into it (and written,
    as a provider format), its answers and streams written from it, and its streams' usage read — everything the
    translated path, the usage tap, the cache and the MCP agent call. Every client format but the relayed-only
    APIs' (`formats.passthrough`, bytes relayed as they came). Found once per endpoint row
    (`sidestep.endpoints.Endpoint.converses`), never asked per request."""

    def read_request(self, body: dict[str, Any]) -> ChatRequest: ...

    def write_response(self, response: ChatResponse) -> bytes: ...

    def stream_writer(self, model: str, include_usage: bool) -> Writer: ...

    def include_usage(self, body: dict[str, Any]) -> bool:
        """Whether the client asked for usage in its stream."""
        ...

    def asking_usage(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The body with the upstream asked to report a stream's usage, when the API does not always."""
        ...

    def stream_usage(self, data: dict[str, Any]) -> tuple[Usage | None, bool]:
        """The usage one stream event carries, and whether the event is nothing but usage (droppable)."""
        ...


@runtime_checkable
class Seams(Protocol):
    """A client format whose same-format continuation (`mid_stream: continue`) can be stitched as bytes.
    A client format without it has every continued stream translated instead."""

    def seam(self, stream_id: str) -> Seam: ...


@runtime_checkable
class Continues(Protocol):
    """A client format whose requests are not a conversation (the legacy completions' `prompt`): it writes the
    continuation request itself (`mid_stream: continue`), instead of the assistant turn and the request to go
    on that a conversation gets. None: this request cannot be continued (the stream ends with its error)."""

    def continued(self, body: dict[str, Any], partial: str) -> dict[str, Any] | None: ...


@runtime_checkable
class EndMarks(Protocol):
    """A client format whose forwarded streams end with an event too long for the tail rule (`stream_complete`
    sees the last 24 bytes; the Responses API's `response.completed` carries the whole response): the relay
    watches the bytes going by for one of these marks instead — bytes only an ending event holds (an `event:`
    line after a line break, a `"type"` member: neither can appear inside a JSON string)."""

    end_marks: tuple[bytes, ...]


@runtime_checkable
class ReopensStreams(Protocol):
    """A client format whose in-stream error refers to the stream it ends (the Responses API's `response.failed`
    carries the response's id): a forwarded stream's relay hands it the stream's first bytes (`head`)."""

    def stream_error_after(self, head: bytes, message: str, code: str = "stream_interrupted") -> bytes: ...


@runtime_checkable
class RefusesPaths(Protocol):
    """A client format that explains, better than a 404, why a path under its endpoint is not served (the
    Responses API's stored responses). Asked only for paths no route serves."""

    def refuse_path(self, path: str, method: str) -> SidestepError | None: ...


@runtime_checkable
class FramedStreams(Protocol):
    """A client format whose streams are framed otherwise than as Server-Sent Events: binary frames (Bedrock's
    AWS event stream), or one JSON array (Gemini without `alt=sse`). Its streams are always re-framed event by
    event, never relayed as bytes: the usage tap and the 24-byte end-of-stream tail read SSE. They carry no
    comments — no keep-alives (the head waits for the first token), no note of who serves or of a mid-stream
    switch — unless the format says what to send in their place (`Comments`: the array's whitespace). A framed
    stream that opens with bytes of its own before any event (the array's `[`) names them in `stream_opening`;
    they go out with the response head."""

    stream_media_type: str


_NO_BUFFERING = [("cache-control", "no-cache"), ("x-accel-buffering", "no")]
_SSE_HEADERS = [("content-type", "text/event-stream"), *_NO_BUFFERING]


def capability(client: object, name: str, default: Any) -> Any:
    """An optional capability's attribute (`EndMarks.end_marks`, `MarksUsage.usage_marker` …), or `default` when
    the format lacks it: an attribute look-up rather than `isinstance` on a runtime-checkable protocol (which
    costs microseconds), and `hasattr` before it rather than `getattr` with a default, which compiled raises and
    catches a formatted AttributeError (~3k instructions) whenever the attribute is missing — the usual case."""
    return getattr(client, name) if hasattr(client, name) else default


def translatable(served: Wire) -> TypeGuard[Format]:
    """Whether an answer served in `served` is read through the canonical model (a `Format`): every format but a
    relayed-only API's (`formats.passthrough`, Bedrock's InvokeModel), which has no `read_response`. One
    attribute look, for the served side of a translation (what routing hands back is typed `Wire`): a
    runtime-protocol isinstance costs ~7 µs, and `hasattr` spares the compiled build a formatted AttributeError."""
    return hasattr(served, "read_response")


def stream_media_type(client: ClientFormat) -> str | None:
    """A `FramedStreams` format's stream media type; None for SSE (read once per endpoint row)."""
    media: str | None = capability(client, "stream_media_type", None)
    return media


class FrameReader(Protocol):
    """A framed stream cut into whole frames as it passes, each read for what the gateway needs."""

    usage: Usage | None  # as the frames reported it so far
    ended: bool  # the stream's last frame went by
    failure: str | None  # an exception frame the upstream sent
    chars: int  # answer text seen so far

    def frames(self, piece: bytes) -> bytes:
        """The whole frames in what has arrived so far, untouched; an incomplete last one is held back. Raises
        `ValueError` for bytes that are not frames."""
        ...


@runtime_checkable
class RelaysFrames(Protocol):
    """A `FramedStreams` format whose streams are relayed frame by frame as they came, never re-framed: the
    frames hold the model's own events (Bedrock's InvokeModelWithResponseStream), which no canonical event
    carries. `relay.frames` relays them; asked once per framed stream (`frame_reader`)."""

    def frame_reader(self) -> FrameReader: ...


def frame_reader(client: ClientFormat) -> FrameReader | None:
    """A `RelaysFrames` format's frame reader for one stream; None for any other. An attribute read."""
    make = capability(client, "frame_reader", None)
    reader: FrameReader | None = make() if make is not None else None
    return reader


def stream_headers(media: str | None) -> list[tuple[str, str]]:
    """A stream's head: Server-Sent Events, or `media`, the type of a format that frames its streams otherwise
    (`stream_media_type`, asked once per stream: `relay.job.StreamJob.media`)."""
    return [*_SSE_HEADERS] if media is None else [("content-type", media), *_NO_BUFFERING]


def stream_comment(client: ClientFormat, media: str | None, text: str) -> bytes:
    """A note to the client between a stream's events (a keep-alive, who serves it, a mid-stream switch, an MCP
    agent's tool step): what the client's format sends in place of an SSE comment (`Comments`: also in a framed
    stream, Gemini's JSON array), nothing in any other framed stream (`media`: Bedrock's), else `: text`."""
    own = capability(client, "comment", None)  # `Comments`: an attribute read, not a runtime-protocol isinstance
    if own is not None:
        return bytes(own(text))
    return b"" if media is not None else sse_comment(text)


def stream_opening(client: ClientFormat) -> bytes:
    """The bytes a `FramedStreams` format's stream opens with, before its first event (b"" for most). Asked only
    of framed streams."""
    opening: bytes = capability(client, "stream_opening", b"")
    return opening


@runtime_checkable
class TranslatesStreams(Protocol):
    """A framed client format that builds the translator of a stream from `source` itself, writing through
    `writer` (its own stream writer); None: the canonical one. Gemini's array re-frames a Gemini target's
    events as they came, instead of rebuilding them from the canonical model (which keeps no safety ratings,
    grounding or thought signatures). Asked once per framed stream (`relay.job.StreamJob.translator`)."""

    def stream_translator(self, source: Wire, writer: Writer) -> Translator | None: ...


@runtime_checkable
class NamesErrors(Protocol):
    """A client format whose SDK reads an error's kind from a header too (Bedrock's `x-amzn-errortype`)."""

    def error_headers(self, status: int) -> list[tuple[str, str]]: ...


@runtime_checkable
class ReadsEmbeddings(Protocol):
    def read_embeddings(self, raw: bytes) -> tuple[list[list[float]], int]: ...


@runtime_checkable
class WritesEmbeddings(Protocol):
    def write_embeddings(self, vectors: list[list[float]], tokens: int, model: str, request: dict[str, Any]) -> bytes:
        """The vectors as this API's embeddings answer to `request` (the client's body: its encoding, whether
        it asked for one vector or a batch)."""
        ...


@runtime_checkable
class ReadsEmbeddingInputs(Protocol):
    """A client format whose embeddings requests targets of other formats can serve: the texts it asks to
    embed, in order, and the dimensions asked for (None: the model's own)."""

    def embedding_request(self, body: dict[str, Any]) -> tuple[list[str], int | None]: ...


@runtime_checkable
class CountsTokens(Protocol):
    """A format with a token-counting endpoint (Anthropic's `count_tokens`, Gemini's `countTokens`): its
    answer read and written, so that a count asked in one format is served by a target of another."""

    def read_token_count(self, raw: bytes) -> int: ...

    def write_token_count(self, tokens: int) -> bytes: ...


@runtime_checkable
class Comments(Protocol):
    """A client format whose readers choke on SSE comments (google-genai reads every line that is not
    `data:` as JSON): what to send in place of `: text` (keep-alives, the served-by and switch notes)."""

    def comment(self, text: str) -> bytes: ...


@runtime_checkable
class ReadsNeeds(Protocol):
    """A client format whose requests say what they need of a model in fields of their own (tools, images,
    a response schema): the capabilities, so that targets lacking one are skipped (`formats.translate`)."""

    def request_needs(self, body: dict[str, Any], stream: bool) -> frozenset[str]: ...


@runtime_checkable
class MarksUsage(Protocol):
    """A client format whose stream events name their usage otherwise than `"usage"` (Gemini's
    `"usageMetadata"`): what the usage tap of a forwarded stream looks for (`sidestep.usage_tap`)."""

    usage_marker: bytes


@dataclass(frozen=True, slots=True)
class ModelCard:
    """One model the gateway lists: a route (owned by `sidestep-route`) or a provider's model (`provider/model`)."""

    id: str
    owned_by: str


@runtime_checkable
class ListsModels(ClientFormat, Protocol):
    """A client format whose SDK lists and retrieves models (`GET /v1/models`, `GET /v1/models/{id}`)."""

    def write_models(self, cards: Sequence[ModelCard], query: str) -> bytes:
        """The list, paged as the API's `query` asks when it pages (Anthropic's `limit`, `after_id` …)."""
        ...

    def write_model(self, card: ModelCard) -> bytes: ...
