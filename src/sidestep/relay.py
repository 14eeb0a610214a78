"""Relaying an upstream SSE stream to the client, and what happens when it breaks.

Before the first content event, failover is invisible (the executor holds the stream back). While the
executor is still looking for a first token, `: keep-alive` comments keep idle proxies from cutting the
connection. After content has started, a failure either ends the stream with an error event in the
client's dialect (`mid_stream: fail`, the default) or asks the next targets to continue from the text
already sent (`mid_stream: continue`), marking the switch with an SSE comment.

Same-format streams are forwarded byte for byte; when the provider's wire format differs from the
client's dialect, each piece is translated as it arrives (`sidestep.translate.StreamTranslator`). The
same-format relay and the job state live in `sidestep.forward` (compilable; re-exported here).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from sidestep.dialects.body import field
from sidestep.dialects.sse import sse_comment
from sidestep.errors import AllAttemptsFailed, UpstreamError, UpstreamRejected
from sidestep.forward import Forward, StreamJob, StreamOutcome, forwarding, relay_after_prelude, stream_error
from sidestep.routing.served import Served
from sidestep.translate import END_MARKER, Reader, StreamTranslator, stream_reader

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
        job.outcome.serving(served)
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
        job.outcome.attempts = (*job.outcome.attempts, *exc.attempts)
        yield stream_error(job.dialect, job.outcome.failure)
        return
    job.outcome.serving(nxt)
    yield sse_comment(
        f"sidestep mid-stream switch from={used.label} to={nxt.target.label} reason={failure.replace(chr(10), ' ')}"
    )
    job.outcome.failure = None  # recovered, for now
    next_job = dataclasses.replace(job, body=body, plan=remaining)
    async for piece in relay(nxt, next_job):
        yield piece
