"""Continuation (`mid_stream: continue`): after content has started, a broken stream is carried on by the targets
not yet used, asked to go on from the text already sent; an SSE comment marks the switch.

The relay keeps the text it sent (`collect`); `resume` asks the job's `Resume` callable (the app's, which runs
the executor) for the next target. Compilable: no async generators here (the stream itself is
`sidestep.relay.translated`'s).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sidestep.errors import AllAttemptsFailed, UpstreamRejected
from sidestep.formats.base import CONTINUE_PROMPT, Continues, Reader
from sidestep.formats.body import field
from sidestep.relay.job import StreamJob
from sidestep.routing.served import Served

__all__ = ["CONTINUE_PROMPT", "collect", "resume"]


def collect(reader: Reader, piece: bytes, text: list[str]) -> str | None:
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


async def resume(served: Served, job: StreamJob, partial: str, failure: str) -> tuple[Served, StreamJob, bytes] | bytes:
    """The remaining targets asked to carry on from `partial`: the one that does, its job and the comment that
    marks the switch — or, when none can, the error event that ends the client's stream."""
    used = served.target
    remaining = [p for p in job.plan if p.target != used]
    body = _continuation(job, partial)
    if not remaining or job.resume is None or body is None:
        return job.stream_error(failure)
    try:
        nxt = await job.resume(body, remaining)
    except (AllAttemptsFailed, UpstreamRejected) as exc:
        job.outcome.failure = f"{failure}; continuation failed: {exc.message}"
        job.outcome.attempts = (*job.outcome.attempts, *exc.attempts)
        return job.stream_error(job.outcome.failure)
    job.outcome.serving(nxt)
    job.outcome.failure = None  # recovered, for now
    reason = failure.replace("\n", " ")
    note = f"sidestep mid-stream switch from={used.label} to={nxt.target.label} reason={reason}"
    switch = job.comment(note)  # nothing in a framed stream, which has no comments
    return nxt, dataclasses.replace(job, body=body, plan=remaining), switch


def _continuation(job: StreamJob, partial: str) -> dict[str, Any] | None:
    """The request that carries the answer on: the client format's own (`Continues`: a completions prompt
    extended by the text sent), or the conversation with the text sent and a request to go on."""
    if isinstance(job.client, Continues):
        return job.client.continued(job.body, partial)
    messages = list(field(job.body, "messages") or [])
    messages += [{"role": "assistant", "content": partial}, {"role": "user", "content": CONTINUE_PROMPT}]
    return {**job.body, "messages": messages}
