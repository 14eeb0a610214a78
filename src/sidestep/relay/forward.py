"""Same-format forward: the stream goes to the client byte for byte as it arrives (the common case).

A hand-written iterator class, not an async generator, so that it compiles (`make compile`: mypyc does not
compile async generators) — the path nearly every stream takes. A break ends the stream with an error event in
the client's format; recovering mid-stream (`mid_stream: continue`) is `sidestep.relay.translated`'s. Whether the
stream ended properly is read from its last bytes (the format's rule), or, for a format whose last event is
too long for that (`formats.base.EndMarks`: the Responses API), from its end marks seen going by.
"""

from __future__ import annotations

from sidestep.errors import UpstreamError
from sidestep.formats.base import capability
from sidestep.relay.job import StreamJob, mend, stream_complete
from sidestep.routing.served import Served
from sidestep.server.types import AbortConnection, Outlet
from sidestep.transport.types import can_pipe

__all__ = ["Forward", "relay_after_prelude"]


def relay_after_prelude(served: Served, job: StreamJob) -> Forward:
    """The rest of a forwarded stream whose held bytes went out with the response head."""
    return Forward(served, job, skip_held=True)


class Forward:
    """Same format, no continuation: bytes through as they arrive; a break ends the stream with an error
    event. A hand-written async iterator over `next_chunk()`: one coroutine level per relayed chunk
    instead of a chain of async generators (they dominated the per-chunk cost). The app hands the server its
    `pipe` (`StreamingResponse.pipe`): written from the upstream's read callback, no await per chunk, when the
    upstream response `Pipes`."""

    __slots__ = (
        "_done",
        "_edge",
        "_failure",
        "_held",
        "_job",
        "_marked",
        "_marks",
        "_pipes",
        "_served",
        "_tail",
        "_tap",
        "prelude",
    )

    def __init__(self, served: Served, job: StreamJob, *, skip_held: bool = False) -> None:
        self._served = served
        self._job = job
        self._tap = tap = job.tap(served)
        held = served.held if tap is None else [tap.feed(piece) for piece in served.held]
        # skipped: the caller sends them (`prelude`) in the response head's write
        self.prelude = b"".join(held) if skip_held else b""
        self._held = [] if skip_held else [piece for piece in held if piece]
        self._tail = served.held[-1][-24:] if served.held else b""
        self._done = served.finished or not served.unread
        self._failure: str | None = None
        # Found once, here: the fast path when the transport has it.
        self._pipes = response if can_pipe(response := served.response) else None
        # An attribute read, not a runtime-protocol isinstance (`formats.base.EndMarks`): this is on every stream.
        self._marks: tuple[bytes, ...] | None = capability(job.client, "end_marks", None)
        self._marked = False  # an end mark went by
        self._edge = b""  # the last bytes seen, for a mark split between two pieces
        if self._marks is not None:
            for piece in served.held:
                self._mark(piece)

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
        """The same relay, written through the server's outlet (the server prefers this to iterating): from the
        upstream's read callback when its response `Pipes`, so a relayed chunk costs no await at all; else piece
        by piece from `next_chunk()` (`_each`), waiting while the client is full."""
        for piece in self._held:
            out.write(piece)
        self._held = []
        response = self._pipes
        if not self._done:
            if response is None:
                await self._each(out)
            else:
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
        self._job.ended(self._served, failure)
        await self.aclose()
        if failure is not None:
            self._job.outcome.failure = failure
            out.write(self._error_event(failure))

    async def _each(self, out: Outlet) -> None:
        response, tap = self._served.response, self._tap
        while True:
            try:
                piece = await response.next_chunk()
            except UpstreamError as exc:
                self._broke(exc)
                return
            if piece is None:
                return
            self._saw(piece)
            if tap is not None:
                piece = tap.feed(piece)
            out.write(piece)
            if out.paused:
                await out.drain()

    def _saw(self, piece: bytes) -> None:
        """Keep the stream's last bytes: whether it ended properly is read from them."""
        if self._marks is not None:
            self._mark(piece)
        self._tail = (self._tail + piece)[-24:] if len(piece) < 24 else piece[-24:]

    def _mark(self, piece: bytes) -> None:
        """Look for an end mark in `piece`, and across its seam with the bytes before it."""
        if not self._marked and self._marks is not None:
            window = self._edge + piece[:64]
            self._marked = any(mark in piece or mark in window for mark in self._marks)
            self._edge = (self._edge + piece)[-64:] if len(piece) < 64 else piece[-64:]

    def _broke(self, exc: UpstreamError) -> None:
        self._failure = f"{self._served.target.label} failed mid-stream: {exc.message}"

    def _ended(self) -> bytes:
        """The upstream body is over: a stream without its end marker was cut short. Returns what the
        usage tap still held (an incomplete last event)."""
        self._done = True
        complete = self._marked if self._marks is not None else stream_complete(self._job, self._tail, None)
        if self._failure is None and not complete:
            self._failure = f"{self._served.target.label} ended the stream before it was complete"
        rest = self._tap.flush() if self._tap is not None else b""
        return rest if self._failure is None else b""  # a stream cut short: its half event is not sent

    async def _finish(self) -> bytes:
        failure, self._failure = self._failure, None
        self._job.ended(self._served, failure)
        await self.aclose()
        if failure is None:
            raise StopAsyncIteration
        self._job.outcome.failure = failure
        return self._error_event(failure)

    def _error_event(self, failure: str) -> bytes:
        """The client's in-stream error event, on an event of its own. With a usage tap the client holds whole
        events only (the tap passes nothing else on, and what it held is dropped at a failure); without one the
        client's bytes are the upstream's, which may end inside an event: after a whole line, a line end closes
        that event first; inside a line nothing can mend it, and the connection is cut (`AbortConnection`: the
        client reads a truncated body, never half an event glued to the error)."""
        # The stream's first bytes (held back until its first content): what a format that names the stream in
        # its error event reads (`formats.base.ReopensStreams`).
        event = _error_event(self._job, failure, b"".join(self._served.held))
        if self._tap is not None:
            return event
        closing = mend(self._tail)
        if closing is None:
            raise AbortConnection
        return closing + event if closing else event

    async def aclose(self) -> None:
        self._done = True
        if self._tap is not None:
            self._job.outcome.usage = self._tap.usage
        await self._served.aclose()


def _error_event(job: StreamJob, failure: str, head: bytes) -> bytes:
    """The client's in-stream error event; a format that has none (opaque audio bytes) has the connection cut,
    so that the client reads a truncated body, not a short one that looks complete."""
    event = job.stream_error(failure, head)
    if not event:
        raise AbortConnection
    return event
