"""The same-format stream relay (`Forward`) and the job state every relay shares.

Kept apart from `sidestep.relay`, whose translating, continuing and keep-alive relays are async
generators, so that the path every same-format stream takes can be compiled (`make compile`: mypyc does
not compile async generators). `sidestep.relay` re-exports all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from sidestep.core.model import Usage
from sidestep.errors import Attempt, UpstreamError
from sidestep.formats.base import ClientFormat, Seams, Writer
from sidestep.formats.translate import StreamTranslator
from sidestep.routing.executor import Executor
from sidestep.routing.plan import Planned
from sidestep.routing.served import Served
from sidestep.server.types import Outlet
from sidestep.usage_tap import UsageTap

__all__ = ["Forward", "StreamJob", "StreamOutcome", "forwarding", "relay_after_prelude"]


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

    def ended(self, executor: Executor, served: Served, failure: str | None) -> None:
        """The stream `served` carried is over: its target is judged, and a failure counts as an attempt."""
        if (attempt := executor.stream_ended(served, failure)) is not None:
            self.attempts = (*self.attempts, attempt)


@dataclass(slots=True)
class StreamJob:
    """What a stream needs to recover mid-way: the request and the targets not yet used."""

    executor: Executor
    operation: str
    body: dict[str, Any]
    plan: Sequence[Planned]
    timeout: float
    mid_stream: str
    client: ClientFormat  # what the client speaks: its stream's shape, end-of-stream rule and error event
    include_usage: bool = False
    writer: Writer | None = None  # set once the client's stream is produced by translation
    tap_usage: bool = False  # read the provider's usage as the stream passes (a plugin needs it)
    drop_usage: bool = False  # the usage chunk was asked for by the gateway, not the client: remove it
    outcome: StreamOutcome = dc_field(default_factory=StreamOutcome)

    def tap(self, served: Served) -> UsageTap | None:
        self.outcome.served = served
        if not self.tap_usage:
            return None
        tap = UsageTap(self.client, drop_usage_chunk=self.drop_usage)  # only same-format streams are tapped
        self.outcome.relayed, self.outcome.kept = tap.relayed_chars, tap.kept
        return tap

    def translator(self, served: Served) -> StreamTranslator | None:
        """Translate when formats differ, and always for a client that may switch mid-stream when its format
        cannot stitch a continuation as bytes (Anthropic's event sequence must stay one message)."""
        if self.writer is None and (served.format is not self.client or self._continuing_unseamed):
            self.writer = self.client.stream_writer(served.target.model, self.include_usage)
        if self.writer is None:
            return None
        translator = StreamTranslator(served.format, self.writer)
        self.outcome.kept = None  # a translated stream's events are not kept
        if self.tap_usage:
            self.outcome.relayed = translator.relayed_chars
        return translator

    @property
    def _continuing_unseamed(self) -> bool:
        return self.mid_stream == "continue" and not isinstance(self.client, Seams)


def forwarding(served: Served, job: StreamJob) -> bool:
    """True when the stream goes out byte for byte, so what was held back can be sent with the head."""
    return job.mid_stream != "continue" and served.format is job.client and job.writer is None


def relay_after_prelude(served: Served, job: StreamJob) -> Forward:
    """The rest of a forwarded stream whose held bytes went out with the response head."""
    return Forward(served, job, skip_held=True)


class Forward:
    """Same format, no continuation: bytes through as they arrive; a break ends the stream with an error
    event. A hand-written async iterator over `next_chunk()`: one coroutine level per relayed chunk
    instead of a chain of async generators (they dominated the per-chunk cost)."""

    __slots__ = ("_done", "_failure", "_held", "_job", "_served", "_tail", "_tap", "prelude")

    def __init__(self, served: Served, job: StreamJob, *, skip_held: bool = False) -> None:
        self._served = served
        self._job = job
        self._tap = tap = job.tap(served)
        held = served.held if tap is None else [tap.feed(piece) for piece in served.held]
        # skipped: the caller sends them (`prelude`) in the response head's write
        self.prelude = b"".join(held) if skip_held else b""
        self._held = [] if skip_held else [piece for piece in held if piece]
        self._tail = served.held[-1][-24:] if served.held else b""
        self._done = served.finished or served.rest is None
        self._failure: str | None = None

    def __aiter__(self) -> Forward:
        return self

    async def __anext__(self) -> bytes:
        if self._held:
            return self._held.pop(0)
        while not self._done:
            try:
                piece = await self._served.response.next_chunk()
            except UpstreamError as exc:
                self._broke(exc)
                piece = None
            if piece is None:
                rest = self._ended()
                if rest:
                    return rest
                break
            self._saw(piece)
            if self._tap is not None:
                piece = self._tap.feed(piece)
                if not piece:
                    continue  # an incomplete event: wait for its end
            return piece
        return await self._finish()

    async def pipe(self, out: Outlet) -> None:
        """The same relay, written from the upstream's read callback (`UpstreamResponse.pipe`): the server
        uses this instead of iterating, so a relayed chunk costs no await at all."""
        for piece in self._held:
            out.write(piece)
        self._held = []
        if not self._done:
            response = self._served.response
            tap = self._tap

            def sink(piece: bytes) -> None:
                self._saw(piece)
                if tap is not None:
                    piece = tap.feed(piece)
                    if not piece:
                        return
                out.write(piece)
                if out.paused:
                    response.pause_reading()

            out.on_resume(response.resume_reading)
            try:
                await response.pipe(sink)
            except UpstreamError as exc:
                self._broke(exc)
            finally:
                out.on_resume(None)
            rest = self._ended()
            if rest:
                out.write(rest)
        failure, self._failure = self._failure, None
        self._job.outcome.ended(self._job.executor, self._served, failure)
        await self.aclose()
        if failure is not None:
            self._job.outcome.failure = failure
            out.write(self._job.client.stream_error(failure))

    def _saw(self, piece: bytes) -> None:
        """Keep the stream's last bytes: whether it ended properly is read from them."""
        self._tail = (self._tail + piece)[-24:] if len(piece) < 24 else piece[-24:]

    def _broke(self, exc: UpstreamError) -> None:
        self._failure = f"{self._served.target.label} failed mid-stream: {exc.message}"

    def _ended(self) -> bytes:
        """The upstream body is over: a stream without its end marker was cut short. Returns what the
        usage tap still held (an incomplete last event)."""
        self._done = True
        if self._failure is None and not self._job.client.stream_complete(self._tail):
            self._failure = f"{self._served.target.label} ended the stream before it was complete"
        return self._tap.flush() if self._tap is not None else b""

    async def _finish(self) -> bytes:
        failure, self._failure = self._failure, None
        self._job.outcome.ended(self._job.executor, self._served, failure)
        await self.aclose()
        if failure is None:
            raise StopAsyncIteration
        self._job.outcome.failure = failure
        return self._job.client.stream_error(failure)

    async def aclose(self) -> None:
        self._done = True
        if self._tap is not None:
            self._job.outcome.usage = self._tap.usage
        await self._served.aclose()
