"""Translated stream: a stream that is not simply forwarded — its provider's format differs from the client's
(each piece is translated as it arrives, `sidestep.formats.translate.StreamTranslator`), or it may have to be
continued by another target (`mid_stream: continue`, `sidestep.relay.continuation`). `relay` picks the relay for
a served stream: this one, the same-format forward (`sidestep.relay.forward`) in the common case, or a framed
stream's frames as they came (`sidestep.relay.frames`).

An async generator, so it stays interpreted (tools/compile.py's INTERPRETED says why).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable

from sidestep.core.format import Translator
from sidestep.errors import UpstreamError
from sidestep.formats.base import Seams, frame_reader
from sidestep.relay.continuation import collect, resume
from sidestep.relay.forward import Forward
from sidestep.relay.frames import Frames
from sidestep.relay.job import StreamJob, mend, stream_complete
from sidestep.routing.served import Served
from sidestep.server.types import AbortConnection
from sidestep.transport.body import chunks

__all__ = ["Relaying", "relay"]


def relay(served: Served, job: StreamJob) -> Forward | Relaying | Frames:
    """Forward what was held back, then upstream bytes as they arrive (translated when formats differ); a
    framed stream of the client's own format that is relayed frame by frame (`RelaysFrames`) goes to `Frames`."""
    if job.media is not None and served.format is job.client:  # asked only of framed streams (Bedrock's)
        reader = frame_reader(job.client)
        if reader is not None:
            return Frames(served, job, reader)
    translator = job.translator(served)
    if translator is None and job.mid_stream != "continue":
        return Forward(served, job)  # the common case
    return Relaying(served, _relay(served, job, translator))


class Relaying:
    """`_relay` as a body that closes its upstream stream even when it is closed before its first step (the
    client left before the head went out): an async generator never started runs no `finally`."""

    __slots__ = ("_body", "_served")

    def __init__(self, served: Served, body: AsyncGenerator[bytes, None]) -> None:
        self._served = served
        self._body = body

    def __aiter__(self) -> Relaying:
        return self

    def __anext__(self) -> Awaitable[bytes]:
        return self._body.__anext__()

    async def aclose(self) -> None:
        await self._body.aclose()
        await self._served.aclose()  # a second close of a finished stream does nothing


async def _relay(
    served: Served, job: StreamJob, translator: Translator | None, continues: str | None = None
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
    raw = translator is None and tap is None  # the upstream's bytes as they come: they may stop inside an event
    sent = b""  # the last bytes the client got, when raw
    try:
        try:
            async for piece in _pieces(served, job, translator):
                if reader is not None and text is not None:
                    started = collect(reader, piece, text)
                    stream_id = started if stream_id is None else stream_id  # the client's: the first one
                if translator is not None:
                    piece = translator.feed(piece)
                else:
                    piece = seam.feed(piece) if seam is not None else piece
                    piece = tap.feed(piece) if tap is not None else piece
                if piece:
                    if raw:
                        sent = (sent + piece)[-4:]
                    yield piece
        except _Incomplete as exc:
            failure = str(exc)
        ended = True
        if tap is not None and (rest := tap.flush()) and failure is None:  # a cut stream's half event stays
            yield rest
        if failure is None:
            return
    finally:
        usage = tap.usage if tap is not None else translator.usage if translator is not None else None
        if job.tap_usage and usage is not None:
            job.outcome.usage = usage
        if ended:
            job.ended(served, failure)
        await served.aclose()
    job.outcome.failure = failure
    closing = mend(sent) if raw else b""  # what the client holds must end between events before more is sent
    if closing is None:
        raise AbortConnection
    if text is None:
        yield closing + job.stream_error(failure)
        return
    nxt = await resume(served, job, "".join(text), failure)
    if isinstance(nxt, bytes):
        yield closing + nxt  # no target could carry on: the error event
        return
    served, job, switch = nxt
    yield closing + switch
    async for piece in _relay(served, job, job.translator(served), stream_id or ""):
        yield piece


class _Incomplete(Exception):
    pass


async def _pieces(served: Served, job: StreamJob, translator: Translator | None) -> AsyncIterator[bytes]:
    label = served.target.label
    for piece in served.held:
        yield piece
    if served.finished or not served.unread:
        return
    tail = served.held[-1][-24:] if served.held else b""
    try:
        async for piece in chunks(served.response):
            yield piece
            tail = (tail + piece)[-24:]
    except UpstreamError as exc:
        raise _Incomplete(f"{label} failed mid-stream: {exc.message}") from exc
    if not stream_complete(job, tail, translator):
        raise _Incomplete(f"{label} ended the stream before it was complete")
