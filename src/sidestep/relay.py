"""Relaying an upstream SSE stream to the client, and what happens when it breaks.

Before the first content event, failover is invisible (the executor holds the stream back). While the
executor is still looking for a first token, `: keep-alive` comments keep idle proxies from cutting the
connection. After content has started, a failure either ends the stream with an error event in the
client's dialect (`mid_stream: fail`, the default) or asks the next targets to continue from the text
already sent (`mid_stream: continue`), marking the switch with an SSE comment.

Same-format streams are forwarded byte for byte; when the provider's wire format differs from the
client's dialect, each piece is translated as it arrives (`sidestep.translate.StreamTranslator`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from sidestep.core.model import Usage
from sidestep.dialects import anthropic
from sidestep.dialects import openai as oai
from sidestep.dialects.body import field
from sidestep.dialects.sse import sse_comment
from sidestep.errors import AllAttemptsFailed, Attempt, UpstreamError, UpstreamRejected
from sidestep.routing.executor import Executor
from sidestep.routing.plan import Planned
from sidestep.routing.served import Served
from sidestep.server.types import Outlet
from sidestep.translate import END_MARKER, Reader, StreamTranslator, Writer, stream_reader, stream_writer
from sidestep.usage_tap import UsageTap

__all__ = [
    "Forward",
    "StreamJob",
    "StreamOutcome",
    "forwarding",
    "relay",
    "relay_after_prelude",
    "stream_error",
    "wait_with_keepalive",
]

KEEPALIVE = b": keep-alive\n\n"
CONTINUE_PROMPT = "Continue exactly where your previous message stopped. Do not repeat anything already written."


def stream_error(dialect: str, message: str, code: str = "stream_interrupted") -> bytes:
    """The event that ends a stream in the client's dialect (its SDK raises on it)."""
    if dialect == "anthropic":
        return anthropic.error_event(message, "overloaded_error" if code == "all_targets_failed" else "api_error")
    return oai.stream_error_event(message, code)


@dataclass(slots=True)
class StreamOutcome:
    """What the gateway learns as a stream goes (shared by a job and its continuations)."""

    served: Served | None = None  # the target serving it last
    usage: Usage | None = None  # as the provider reported it (when `StreamJob.tap_usage` asked)
    failure: str | None = None  # why the stream ended with an error event
    attempts: tuple[Attempt, ...] = ()  # when no target served it: every one tried


@dataclass(slots=True)
class StreamJob:
    """What a stream needs to recover mid-way: the request and the targets not yet used."""

    executor: Executor
    operation: str
    body: dict[str, Any]
    plan: Sequence[Planned]
    timeout: float
    mid_stream: str
    dialect: str = "openai"
    include_usage: bool = False
    writer: Writer | None = None  # set once the client's stream is produced by translation
    tap_usage: bool = False  # read the provider's usage as the stream passes (a plugin needs it)
    drop_usage: bool = False  # the usage chunk was asked for by the gateway, not the client: remove it
    outcome: StreamOutcome = dc_field(default_factory=StreamOutcome)

    def tap(self, served: Served) -> UsageTap | None:
        self.outcome.served = served
        return UsageTap(served.wire, drop_usage_chunk=self.drop_usage) if self.tap_usage else None

    def translator(self, served: Served) -> StreamTranslator | None:
        """Translate when formats differ, and always for an Anthropic client that may switch mid-stream
        (its event sequence must stay one message across targets)."""
        if self.writer is None and (served.wire != self.dialect or self._continuing_anthropic):
            self.writer = stream_writer(self.dialect, served.target.model, self.include_usage)
        return StreamTranslator(served.wire, self.writer) if self.writer is not None else None

    @property
    def _continuing_anthropic(self) -> bool:
        return self.dialect == "anthropic" and self.mid_stream == "continue"


def served_comment(served: Served) -> bytes:
    target = served.target
    return sse_comment(f"sidestep provider={target.provider} model={target.model} attempts={len(served.attempts)}")


async def wait_with_keepalive(task: asyncio.Task[Served], interval: float, job: StreamJob) -> AsyncIterator[bytes]:
    """The body of a stream whose headers went out before a target answered."""
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=interval)
            if not done:
                yield KEEPALIVE
        try:
            served = task.result()
        except UpstreamRejected as exc:
            job.outcome.failure, job.outcome.attempts = exc.error.message, exc.attempts
            yield stream_error(job.dialect, exc.error.message, code="upstream_rejected")
            return
        except AllAttemptsFailed as exc:
            job.outcome.failure, job.outcome.attempts = exc.message, exc.attempts
            yield stream_error(job.dialect, exc.message, code="all_targets_failed")
            return
        yield served_comment(served)
        async for piece in relay(served, job):
            yield piece
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def relay(served: Served, job: StreamJob) -> AsyncIterator[bytes]:
    """Forward what was held back, then upstream bytes as they arrive (translated when formats differ)."""
    translator = job.translator(served)
    if translator is None and job.mid_stream != "continue":
        return Forward(served, job)  # the common case
    return _relay(served, job, translator)


def forwarding(served: Served, job: StreamJob) -> bool:
    """True when the stream goes out byte for byte, so what was held back can be sent with the head."""
    return job.mid_stream != "continue" and served.wire == job.dialect and job.writer is None


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
        await self.aclose()
        failure, self._failure = self._failure, None
        if failure is not None:
            self._job.outcome.failure = failure
            out.write(stream_error(self._job.dialect, failure))

    def _saw(self, piece: bytes) -> None:
        """Keep the stream's last bytes: whether it ended properly is read from them."""
        self._tail = (self._tail + piece)[-24:] if len(piece) < 24 else piece[-24:]

    def _broke(self, exc: UpstreamError) -> None:
        self._failure = f"{self._served.target.label} failed mid-stream: {exc.message}"

    def _ended(self) -> bytes:
        """The upstream body is over: a stream without its end marker was cut short. Returns what the
        usage tap still held (an incomplete last event)."""
        self._done = True
        served = self._served
        if self._failure is None and END_MARKER.get(served.wire, b"[DONE]") not in self._tail:
            self._failure = f"{served.target.label} ended the stream before it was complete"
        return self._tap.flush() if self._tap is not None else b""

    async def _finish(self) -> bytes:
        await self.aclose()
        failure, self._failure = self._failure, None
        if failure is None:
            raise StopAsyncIteration
        self._job.outcome.failure = failure
        return stream_error(self._job.dialect, failure)

    async def aclose(self) -> None:
        self._done = True
        if self._tap is not None:
            self._job.outcome.usage = self._tap.usage
        await self._served.aclose()


async def _relay(served: Served, job: StreamJob, translator: StreamTranslator | None) -> AsyncIterator[bytes]:
    text: list[str] | None = [] if job.mid_stream == "continue" else None
    reader = stream_reader(served.wire) if text is not None else None
    tap = job.tap(served) if translator is None else None
    try:
        failure = None
        try:
            async for piece in _pieces(served, translator):
                if reader is not None and text is not None:
                    _collect(reader, piece, text)
                if translator is not None:
                    piece = translator.feed(piece)
                elif tap is not None:
                    piece = tap.feed(piece)
                if piece:
                    yield piece
        except _Incomplete as exc:
            failure = str(exc)
        if tap is not None and (rest := tap.flush()):
            yield rest
        if failure is None:
            return
    finally:
        usage = tap.usage if tap is not None else translator.usage if translator is not None else None
        if job.tap_usage and usage is not None:
            job.outcome.usage = usage
        await served.aclose()
    job.outcome.failure = failure
    if text is None:
        yield stream_error(job.dialect, failure)
        return
    async for piece in _continue(served, job, "".join(text), failure):
        yield piece


class _Incomplete(Exception):
    pass


async def _pieces(served: Served, translator: StreamTranslator | None) -> AsyncIterator[bytes]:
    label = served.target.label
    for piece in served.held:
        yield piece
    if served.finished or served.rest is None:
        return
    marker = END_MARKER.get(served.wire, b"[DONE]")
    tail = served.held[-1][-24:] if served.held else b""
    try:
        async for piece in served.rest:
            yield piece
            tail = (tail + piece)[-24:]
    except UpstreamError as exc:
        raise _Incomplete(f"{label} failed mid-stream: {exc.message}") from exc
    complete = translator.ended if translator is not None else marker in tail
    if not complete:
        raise _Incomplete(f"{label} ended the stream before it was complete")


def _collect(reader: Reader, piece: bytes, text: list[str]) -> None:
    try:
        events = reader.feed(piece)
    except ValueError:  # a malformed event: the relay reports the stream's failure, not this
        return
    text.extend(event.text for event in events if event.kind == "text")


async def _continue(served: Served, job: StreamJob, partial: str, failure: str) -> AsyncIterator[bytes]:
    """Ask the remaining targets to carry on from `partial`; mark the switch; fail cleanly if none can."""
    used = served.target
    remaining = [p for p in job.plan if p.target != used]
    if not remaining:
        yield stream_error(job.dialect, failure)
        return
    messages = list(field(job.body, "messages") or [])
    messages += [{"role": "assistant", "content": partial}, {"role": "user", "content": CONTINUE_PROMPT}]
    body: dict[str, Any] = {**job.body, "messages": messages}
    deadline = job.executor.clock() + job.timeout
    try:
        nxt = await job.executor.run(job.operation, body, remaining, deadline, stream=True)
    except (AllAttemptsFailed, UpstreamRejected) as exc:
        job.outcome.failure = f"{failure}; continuation failed: {exc.message}"
        yield stream_error(job.dialect, job.outcome.failure)
        return
    yield sse_comment(
        f"sidestep mid-stream switch from={used.label} to={nxt.target.label} reason={failure.replace(chr(10), ' ')}"
    )
    job.outcome.failure = None  # recovered, for now
    next_job = dataclasses.replace(job, body=body, plan=remaining)
    async for piece in relay(nxt, next_job):
        yield piece
