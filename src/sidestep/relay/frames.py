"""A framed stream relayed frame by frame as it came (`formats.base.RelaysFrames`: Bedrock's
InvokeModelWithResponseStream, whose frames hold the model's own events).

Only whole frames go out: the format's `FrameReader` cuts the upstream bytes into frames and reads each for the
usage, the end and an exception the upstream sent, so a break never leaves half a frame before the exception
frame that ends the client's stream (boto3 raises it as `EventStreamError`). An exception frame from the
upstream goes through as it came and ends the stream: the target is judged failed, nothing more is written.
Never continued by another target (the model's own events cannot be stitched), and never translated.

A hand-written iterator class, not an async generator, so that it compiles (`make compile`).
"""

from __future__ import annotations

from sidestep.errors import UpstreamError
from sidestep.formats.base import FrameReader
from sidestep.relay.job import StreamJob
from sidestep.routing.served import Served

__all__ = ["Frames"]


class Frames:
    """Whole frames through as they arrive; a break ends the stream with the client format's exception frame."""

    __slots__ = ("_done", "_failure", "_held", "_job", "_over", "_passed", "_reader", "_served")

    def __init__(self, served: Served, job: StreamJob, reader: FrameReader) -> None:
        self._served = served
        self._job = job
        self._reader = reader
        self._failure: str | None = None
        self._passed = False  # the failure is an exception frame the client already has
        self._done = served.finished or not served.unread
        self._over = False  # judged and closed: nothing more to say
        self._held: list[bytes] = []
        job.outcome.served, job.outcome.kept = served, None
        if job.tap_usage:
            job.outcome.relayed = self._chars
        for piece in served.held:
            self._take(piece)

    def __aiter__(self) -> Frames:
        return self

    async def __anext__(self) -> bytes:
        if self._held:
            return self._held.pop(0)
        while not self._done:
            try:
                piece = await self._served.response.next_chunk()
            except UpstreamError as exc:
                self._failure = f"{self._served.target.label} failed mid-stream: {exc.message}"
                break
            if piece is None:
                break
            self._take(piece)
            if self._held:
                return self._held.pop(0)
        return await self._finish()

    def _take(self, piece: bytes) -> None:
        """Whole frames of `piece` to send; a malformed frame or the upstream's exception frame ends the relay."""
        if self._failure is not None:
            return
        reader = self._reader
        try:
            whole = reader.frames(piece)
        except ValueError as exc:
            self._failure = f"{self._served.target.label} sent a malformed stream: {exc}"
            self._done = True
            return
        if whole:
            self._held.append(whole)
        if reader.failure is not None:
            self._failure = f"{self._served.target.label} failed mid-stream: {reader.failure}"
            self._passed = self._done = True

    async def _finish(self) -> bytes:
        if self._over:
            raise StopAsyncIteration
        self._done = self._over = True
        failure, self._failure = self._failure, None
        if failure is None and not self._reader.ended:
            failure = f"{self._served.target.label} ended the stream before it was complete"
        self._job.ended(self._served, failure)
        await self.aclose()
        if failure is None:
            raise StopAsyncIteration
        self._job.outcome.failure = failure
        if self._passed:
            raise StopAsyncIteration
        return self._job.stream_error(failure)

    def _chars(self) -> int:
        return self._reader.chars

    async def aclose(self) -> None:
        self._done = True
        if self._job.tap_usage:
            self._job.outcome.usage = self._reader.usage
        await self._served.aclose()
