"""What every relay of one stream shares: the job (the request, the targets not yet used, how to judge a stream
that ended and how to ask for a continuation) and its outcome, plus the one end-of-stream rule.

The relays are handed callables, not the executor: the app owns routing (`app-drives-routing` in pyproject's
import-linter contracts). Compilable: no async generators here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from sidestep.core.model import Usage
from sidestep.errors import Attempt
from sidestep.formats.base import (
    ClientFormat,
    Converses,
    ReopensStreams,
    Seams,
    Translator,
    Writer,
    capability,
    stream_comment,
    stream_headers,
)
from sidestep.formats.translate import StreamTranslator
from sidestep.routing.plan import Planned
from sidestep.routing.served import Served
from sidestep.usage_tap import UsageTap

__all__ = [
    "Judge",
    "Resume",
    "StreamJob",
    "StreamOutcome",
    "forwarding",
    "mend",
    "stream_complete",
    "stream_headers",
]

# The verdict on a stream that reached the client (`Executor.stream_ended`): an attempt when it failed.
Judge = Callable[[Served, str | None], Attempt | None]
# Run the request `body` again on `plan` (the targets not yet used), as a stream: a continuation's target.
Resume = Callable[[dict[str, Any], Sequence[Planned]], Awaitable[Served]]


@dataclass(slots=True)
class StreamOutcome:
    """What the gateway learns as a stream goes (shared by a job and its continuations)."""

    served: Served | None = None  # the target serving it last
    usage: Usage | None = None  # as the provider reported it (when `StreamJob.tap_usage` asked)
    failure: str | None = None  # why the stream ended with an error event
    attempts: tuple[Attempt, ...] = ()  # every try and skip so far, continuations' included
    relayed: Callable[[], int] | None = None  # characters of answer relayed so far (when usage is tapped)
    # The events relayed, in the client's format (a tapped same-format stream; None past the tap's bound).
    kept: Callable[[], list[bytes] | None] | None = None

    def serving(self, served: Served) -> None:
        """`served` carries the stream from here on; the attempts it took count too."""
        self.served = served
        self.attempts = (*self.attempts, *served.attempts)


@dataclass(slots=True)
class StreamJob:
    """What a stream needs to end well and to recover mid-way: the request and the targets not yet used."""

    judge: Judge
    body: dict[str, Any]
    plan: Sequence[Planned]
    mid_stream: str
    client: ClientFormat  # what the client speaks: its stream's shape, end-of-stream rule and error event
    # The same format as it converses through the canonical model (translation, the usage tap), bound with the
    # route; None for a relayed-only API: its stream goes out as the upstream's bytes (or frames), never
    # translated. The app passes every field up to `media` positionally: keywords cost ~1.4k instructions per
    # stream (measured, the interpreted build).
    converses: Converses | None
    include_usage: bool = False
    resume: Resume | None = None  # set when `mid_stream` is "continue"
    tap_usage: bool = False  # read the provider's usage as the stream passes (a plugin needs it)
    drop_usage: bool = False  # the usage chunk was asked for by the gateway, not the client: remove it
    # The client's stream media type when it is not SSE (`formats.base.FramedStreams`): no comments, never
    # relayed as bytes. Asked once by whoever builds the job (`stream_media_type`), read here as a field.
    media: str | None = None
    writer: Writer | None = None  # set once the client's stream is produced by translation
    outcome: StreamOutcome = dc_field(default_factory=StreamOutcome)

    def ended(self, served: Served, failure: str | None) -> None:
        """The stream `served` carried is over: its target is judged, and a failure counts as an attempt."""
        if (attempt := self.judge(served, failure)) is not None:
            self.outcome.attempts = (*self.outcome.attempts, attempt)

    def comment(self, text: str) -> bytes:
        """A note to the client between events (a keep-alive, who serves it, a mid-stream switch): the one rule,
        `formats.base.stream_comment` — an SSE comment, what the client's format sends in its place (`Comments`),
        or nothing in a framed stream (Bedrock's)."""
        return stream_comment(self.client, self.media, text)

    def stream_error(self, message: str, head: bytes = b"") -> bytes:
        """The event that ends the client's stream after a failure: the translating writer's when there is one
        (it knows the stream so far: a Responses client gets `response.failed` with its response id and the
        output items sent), else the client format's (a forwarded stream's bytes are not read; a format that
        names the stream it ends reads its first bytes, `head`)."""
        if self.writer is not None:
            return self.writer.error(message)
        if head and isinstance(self.client, ReopensStreams):
            return self.client.stream_error_after(head, message)
        return self.client.stream_error(message)

    def tap(self, served: Served) -> UsageTap | None:
        self.outcome.served = served
        if not self.tap_usage or self.converses is None:
            return None
        tap = UsageTap(self.converses, self.drop_usage)  # only same-format streams are tapped (positional)
        self.outcome.relayed, self.outcome.kept = tap.relayed_chars, tap.kept
        return tap

    def translator(self, served: Served) -> Translator | None:
        """Translate when formats differ, always for a client that may switch mid-stream when its format
        cannot stitch a continuation as bytes (Anthropic's event sequence must stay one message), and always
        for a framed stream (its end and its usage are read by its reader, not from SSE bytes) — by the client
        format's own translator when it builds one (`TranslatesStreams`: asked of framed streams only). A
        relayed-only client's stream is never translated (`converses` None)."""
        converses = self.converses
        if (
            self.writer is None
            and converses is not None
            and (served.format is not self.client or self._continuing_unseamed or self.media is not None)
        ):
            self.writer = converses.stream_writer(served.target.model, self.include_usage)
        if self.writer is None:
            return None
        # `TranslatesStreams`, read as an attribute: a runtime-protocol isinstance would cost microseconds a stream.
        make = capability(self.client, "stream_translator", None) if self.media is not None else None
        own: Translator | None = make(served.format, self.writer) if make is not None else None
        translator = own if own is not None else StreamTranslator(served.format, self.writer)
        self.outcome.kept = None  # a translated stream's events are not kept
        if self.tap_usage:
            self.outcome.relayed = translator.relayed_chars
        return translator

    @property
    def _continuing_unseamed(self) -> bool:
        return self.mid_stream == "continue" and not isinstance(self.client, Seams)


def forwarding(served: Served, job: StreamJob) -> bool:
    """True when the stream goes out byte for byte, so what was held back can be sent with the head."""
    return job.mid_stream != "continue" and served.format is job.client and job.writer is None and job.media is None


def stream_complete(job: StreamJob, tail: bytes, translator: Translator | None) -> bool:
    """The one end-of-stream rule, the format's: did the upstream stream end properly, or was it cut short?
    Read from the provider format's own end event when the stream is translated (its reader saw it); from the
    last bytes when it is forwarded (then the provider's format is the client's, which knows its end marker)."""
    return translator.ended if translator is not None else job.client.stream_complete(tail)


def mend(tail: bytes) -> bytes | None:
    """What ends an SSE event cut short so that an event of the gateway's (an error, a switch) can follow, when
    the client's bytes end in `tail`: nothing between two events; a line end after a whole line (that event is
    then complete); None inside a line, which nothing can mend: the caller cuts the connection, so that the
    client reads a truncated body rather than half an event glued to the next."""
    if not tail or tail.endswith((b"\n\n", b"\r\n\r\n", b"\r\r")):
        return b""
    if tail.endswith(b"\n"):
        return b"\n"
    if tail.endswith(b"\r"):
        return b"\r\n"
    return None
