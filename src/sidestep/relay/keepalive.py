"""Keep-alive: the body of a stream whose head went out before any target answered. While the executor is still
looking for a first token, `: keep-alive` comments keep idle proxies from cutting the connection; then the
stream is relayed (`sidestep.relay.translated.relay`) after a comment naming who serves it, or ended with an
error event in the client's format when no target could.

An async generator, so it stays interpreted (tools/compile.py's INTERPRETED says why).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from sidestep.errors import AllAttemptsFailed, UpstreamRejected
from sidestep.relay.forward import Forward
from sidestep.relay.frames import Frames
from sidestep.relay.job import StreamJob
from sidestep.relay.translated import Relaying, relay
from sidestep.routing.served import Served

__all__ = ["KEEPALIVE", "wait_with_keepalive"]

KEEPALIVE = b": keep-alive\n\n"


def served_comment(served: Served, job: StreamJob) -> bytes:
    target = served.target
    return job.comment(f"sidestep provider={target.provider} model={target.model} attempts={len(served.attempts)}")


async def wait_with_keepalive(task: asyncio.Task[Served], interval: float, job: StreamJob) -> AsyncIterator[bytes]:
    """Closed early (the client left), it closes what it relays: an iterator inside an async generator is not
    closed with it, and an upstream stream left open holds its connection and buffers for good."""
    body: Forward | Relaying | Frames | None = None
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=interval)
            if not done:
                yield job.comment("keep-alive")  # KEEPALIVE, or what the client reads in its place
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
        yield served_comment(served, job)
        async for piece in body:
            yield piece
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        elif body is not None:
            await body.aclose()
