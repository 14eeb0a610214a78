"""Relaying an upstream SSE stream to the client, and what happens when it breaks.

Before the first content event, failover is invisible (the executor holds the stream back). While the
executor is still looking for a first token, `: keep-alive` comments keep idle proxies from cutting the
connection. After content has started, a failure either ends the stream with an OpenAI error event
(`mid_stream: fail`, the default) or asks the next targets to continue from the text already sent
(`mid_stream: continue`), marking the switch with an SSE comment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from sidestep.dialects import openai as oai
from sidestep.dialects.sse import SSESplitter, sse_comment
from sidestep.errors import AllAttemptsFailed, UpstreamError, UpstreamRejected
from sidestep.routing.executor import Executor
from sidestep.routing.plan import Planned
from sidestep.routing.served import Served

__all__ = ["StreamJob", "relay", "wait_with_keepalive"]

KEEPALIVE = b": keep-alive\n\n"
CONTINUE_PROMPT = "Continue exactly where your previous message stopped. Do not repeat anything already written."
_decode = msgspec.json.Decoder().decode


@dataclass(slots=True)
class StreamJob:
    """What a stream needs to recover mid-way: the request and the targets not yet used."""

    executor: Executor
    operation: str
    body: dict[str, Any]
    plan: Sequence[Planned]
    timeout: float
    mid_stream: str


def served_comment(served: Served) -> bytes:
    target = served.target
    return sse_comment(f"sidestep provider={target.provider} model={target.model} attempts={len(served.attempts)}")


async def wait_with_keepalive(
    task: asyncio.Task[Served], interval: float, job: StreamJob, on_served: Callable[[Served], None]
) -> AsyncIterator[bytes]:
    """The body of a stream whose headers went out before a target answered."""
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=interval)
            if not done:
                yield KEEPALIVE
        try:
            served = task.result()
        except UpstreamRejected as exc:
            yield oai.stream_error_event(exc.error.message, code="upstream_rejected")
            return
        except AllAttemptsFailed as exc:
            yield oai.stream_error_event(exc.message, code="all_targets_failed")
            return
        on_served(served)
        yield served_comment(served)
        async for piece in relay(served, job):
            yield piece
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def relay(served: Served, job: StreamJob) -> AsyncIterator[bytes]:
    """Forward what was held back, then upstream bytes as they arrive."""
    track = job.mid_stream == "continue"
    text: list[str] = []
    splitter = SSESplitter() if track else None
    try:
        failure = None
        try:
            async for piece in _pieces(served):
                if splitter is not None:
                    _collect(splitter, piece, text)
                yield piece
        except _Incomplete as exc:
            failure = str(exc)
        if failure is None:
            return
    finally:
        await served.aclose()
    if not track:
        yield oai.stream_error_event(failure)
        return
    async for piece in _continue(served, job, "".join(text), failure):
        yield piece


class _Incomplete(Exception):
    pass


async def _pieces(served: Served) -> AsyncIterator[bytes]:
    label = served.target.label
    for piece in served.held:
        yield piece
    if served.finished or served.rest is None:
        return
    tail = served.held[-1][-16:] if served.held else b""
    try:
        async for piece in served.rest:
            yield piece
            tail = (tail + piece)[-16:]
    except UpstreamError as exc:
        raise _Incomplete(f"{label} failed mid-stream: {exc.message}") from exc
    if b"[DONE]" not in tail:
        raise _Incomplete(f"{label} ended the stream before it was complete")


def _collect(splitter: SSESplitter, piece: bytes, text: list[str]) -> None:
    for data in splitter.feed(piece):
        if data == b"[DONE]":
            continue
        try:
            chunk = _decode(data)
        except msgspec.DecodeError:
            continue
        for choice in chunk.get("choices") or () if isinstance(chunk, dict) else ():
            content = (choice.get("delta") or {}).get("content")
            if isinstance(content, str):
                text.append(content)


async def _continue(served: Served, job: StreamJob, partial: str, failure: str) -> AsyncIterator[bytes]:
    """Ask the remaining targets to carry on from `partial`; mark the switch; fail cleanly if none can."""
    used = served.target
    remaining = [p for p in job.plan if p.target != used]
    if not remaining:
        yield oai.stream_error_event(failure)
        return
    messages = list(job.body.get("messages") or [])
    messages += [{"role": "assistant", "content": partial}, {"role": "user", "content": CONTINUE_PROMPT}]
    body = {**job.body, "messages": messages}
    deadline = job.executor.clock() + job.timeout
    try:
        nxt = await job.executor.run(job.operation, body, remaining, deadline, stream=True)
    except (AllAttemptsFailed, UpstreamRejected) as exc:
        yield oai.stream_error_event(f"{failure}; continuation failed: {exc.message}")
        return
    yield sse_comment(
        f"sidestep mid-stream switch from={used.label} to={nxt.target.label} reason={failure.replace(chr(10), ' ')}"
    )
    next_job = StreamJob(job.executor, job.operation, body, remaining, job.timeout, job.mid_stream)
    async for piece in relay(nxt, next_job):
        yield piece
