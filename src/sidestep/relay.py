"""Relaying an upstream SSE stream to the client, and what happens when it breaks.

Before the first content event, failover is invisible (the executor holds the stream back). While the
executor is still looking for a first token, `: keep-alive` comments keep idle proxies from cutting the
connection. After content has started, a failure either ends the stream with an error event in the
client's format (`mid_stream: fail`, the default) or asks the next targets to continue from the text
already sent (`mid_stream: continue`), marking the switch with an SSE comment.

Same-format streams are forwarded byte for byte; when the provider's wire format differs from the
client's, each piece is translated as it arrives (`sidestep.formats.translate.StreamTranslator`). The
same-format relay and the job state live in `sidestep.forward` (compilable; re-exported here).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any

from sidestep.errors import AllAttemptsFailed, UpstreamError, UpstreamRejected
from sidestep.formats.base import Reader, Seams
from sidestep.formats.body import field
from sidestep.formats.sse import sse_comment
from sidestep.formats.translate import StreamTranslator
from sidestep.forward import Forward, StreamJob, StreamOutcome, forwarding, relay_after_prelude
from sidestep.routing.served import Served

__all__ = [
    "Forward",
    "StreamJob",
    "StreamOutcome",
    "forwarding",
    "relay",
    "relay_after_prelude",
    "wait_with_keepalive",
]

KEEPALIVE = b": keep-alive\n\n"
CONTINUE_PROMPT = "Continue exactly where your previous message stopped. Do not repeat anything already written."


def served_comment(served: Served) -> bytes:
    target = served.target
    return sse_comment(f"sidestep provider={target.provider} model={target.model} attempts={len(served.attempts)}")


async def wait_with_keepalive(task: asyncio.Task[Served], interval: float, job: StreamJob) -> AsyncIterator[bytes]:
    """The body of a stream whose headers went out before a target answered. Closed early (the client left),
    it closes what it relays: an iterator inside an async generator is not closed with it, and an upstream
    stream left open holds its connection and buffers for good."""
    body: Forward | _Relaying | None = None
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=interval)
            if not done:
                yield KEEPALIVE
        try:
            served = task.result()
        except UpstreamRejected as exc:
            job.outcome.failure, job.outcome.attempts = exc.error.message, exc.attempts
            yield job.client.stream_error(exc.error.message, code="upstream_rejected")
            return
        except AllAttemptsFailed as exc:
            job.outcome.failure, job.outcome.attempts = exc.message, exc.attempts
            yield job.client.stream_error(exc.message, code="all_targets_failed")
            return
        job.outcome.serving(served)
        body = relay(served, job)
        yield served_comment(served)
        async for piece in body:
            yield piece
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        elif body is not None:
            await body.aclose()


def relay(served: Served, job: StreamJob) -> Forward | _Relaying:
    """Forward what was held back, then upstream bytes as they arrive (translated when formats differ)."""
    translator = job.translator(served)
    if translator is None and job.mid_stream != "continue":
        return Forward(served, job)  # the common case
    return _Relaying(served, _relay(served, job, translator))


class _Relaying:
    """`_relay` as a body that closes its upstream stream even when it is closed before its first step (the
    client left before the head went out): an async generator never started runs no `finally`."""

    __slots__ = ("_body", "_served")

    def __init__(self, served: Served, body: AsyncGenerator[bytes, None]) -> None:
        self._served = served
        self._body = body

    def __aiter__(self) -> _Relaying:
        return self

    def __anext__(self) -> Awaitable[bytes]:
        return self._body.__anext__()

    async def aclose(self) -> None:
        await self._body.aclose()
        await self._served.aclose()  # a second close of a finished stream does nothing


async def _relay(
    served: Served, job: StreamJob, translator: StreamTranslator | None, continues: str | None = None
) -> AsyncGenerator[bytes, None]:
    """`continues`: the id of the client's stream when this one continues it ("" when that is unknown)."""
    text: list[str] | None = [] if job.mid_stream == "continue" else None
    reader = served.format.stream_reader() if text is not None else None
    tap = job.tap(served) if translator is None else None
    client = job.client  # untranslated, a continuation is stitched by the client format's seam
    seam = (
        client.seam(continues) if continues is not None and translator is None and isinstance(client, Seams) else None
    )
    stream_id = continues
    failure: str | None = None
    ended = False  # the upstream stream is over, one way or the other (not: the client left)
    try:
        try:
            async for piece in _pieces(served, job, translator):
                if reader is not None and text is not None:
                    started = _collect(reader, piece, text)
                    stream_id = started if stream_id is None else stream_id  # the client's: the first one
                if translator is not None:
                    piece = translator.feed(piece)
                else:
                    piece = seam.feed(piece) if seam is not None else piece
                    piece = tap.feed(piece) if tap is not None else piece
                if piece:
                    yield piece
        except _Incomplete as exc:
            failure = str(exc)
        ended = True
        if tap is not None and (rest := tap.flush()):
            yield rest
        if failure is None:
            return
    finally:
        usage = tap.usage if tap is not None else translator.usage if translator is not None else None
        if job.tap_usage and usage is not None:
            job.outcome.usage = usage
        if ended:
            job.outcome.ended(job.executor, served, failure)
        await served.aclose()
    job.outcome.failure = failure
    if text is None:
        yield job.client.stream_error(failure)
        return
    async for piece in _continue(served, job, "".join(text), failure, stream_id or ""):
        yield piece


class _Incomplete(Exception):
    pass


async def _pieces(served: Served, job: StreamJob, translator: StreamTranslator | None) -> AsyncIterator[bytes]:
    label = served.target.label
    for piece in served.held:
        yield piece
    if served.finished or served.rest is None:
        return
    tail = served.held[-1][-24:] if served.held else b""
    try:
        async for piece in served.rest:
            yield piece
            tail = (tail + piece)[-24:]
    except UpstreamError as exc:
        raise _Incomplete(f"{label} failed mid-stream: {exc.message}") from exc
    complete = translator.ended if translator is not None else job.client.stream_complete(tail)
    if not complete:
        raise _Incomplete(f"{label} ended the stream before it was complete")


def _collect(reader: Reader, piece: bytes, text: list[str]) -> str | None:
    """Keep the text of `piece`; return the stream's id when `piece` starts the stream."""
    try:
        events = reader.feed(piece)
    except ValueError:  # a malformed event: the relay reports the stream's failure, not this
        return None
    started = None
    for event in events:
        if event.kind == "text":
            text.append(event.text)
        elif event.kind == "start":
            started = event.id
    return started


async def _continue(served: Served, job: StreamJob, partial: str, failure: str, stream_id: str) -> AsyncIterator[bytes]:
    """Ask the remaining targets to carry on from `partial`; mark the switch; fail cleanly if none can."""
    used = served.target
    remaining = [p for p in job.plan if p.target != used]
    if not remaining:
        yield job.client.stream_error(failure)
        return
    messages = list(field(job.body, "messages") or [])
    messages += [{"role": "assistant", "content": partial}, {"role": "user", "content": CONTINUE_PROMPT}]
    body: dict[str, Any] = {**job.body, "messages": messages}
    deadline = job.executor.clock() + job.timeout
    try:
        nxt = await job.executor.run(job.operation, body, remaining, deadline, True, source=job.client)
    except (AllAttemptsFailed, UpstreamRejected) as exc:
        job.outcome.failure = f"{failure}; continuation failed: {exc.message}"
        job.outcome.attempts = (*job.outcome.attempts, *exc.attempts)
        yield job.client.stream_error(job.outcome.failure)
        return
    job.outcome.serving(nxt)
    yield sse_comment(
        f"sidestep mid-stream switch from={used.label} to={nxt.target.label} reason={failure.replace(chr(10), ' ')}"
    )
    job.outcome.failure = None  # recovered, for now
    next_job = dataclasses.replace(job, body=body, plan=remaining)
    async for piece in _relay(nxt, next_job, next_job.translator(nxt), stream_id):
        yield piece
