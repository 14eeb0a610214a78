"""Reading an upstream body, built on the one read primitive every `UpstreamResponse` has (`next_chunk`).

`read_all(response)` is the whole body; `chunks(response)` iterates it. Neither is a member of the response:
a transport implements `next_chunk` and gets both. A response that may have its whole body in hand with its
headers declares `Buffered`, and `read_all` takes it in one call (the non-stream answer's hot path).
"""

from __future__ import annotations

from sidestep.transport.types import UpstreamResponse, is_buffered

__all__ = ["Chunks", "chunks", "in_hand", "read_all"]


def in_hand(response: UpstreamResponse) -> bytes | None:
    """The whole body when it is already here (a `Buffered` response whose small JSON answer came with its
    head), taken without an await; else None, and `read_all` reads it. Not a coroutine: the non-stream answer's
    hot path creates none."""
    return response.buffered() if is_buffered(response) else None


async def read_all(response: UpstreamResponse) -> bytes:
    """The whole body (the connection is released at its end). A body that came in one piece, as a small JSON
    answer does, is returned as it is: no join; taken in one call when the response is `Buffered`."""
    if (whole := in_hand(response)) is not None:
        return whole
    first = await response.next_chunk()
    if first is None:
        return b""
    piece = await response.next_chunk()
    if piece is None:
        return first
    pieces = [first, piece]
    while (piece := await response.next_chunk()) is not None:
        pieces.append(piece)
    return b"".join(pieces)


def chunks(response: UpstreamResponse) -> Chunks:
    """The body piece by piece, as an async iterator (`async for piece in chunks(response)`)."""
    return Chunks(response)


class Chunks:
    """`next_chunk()` until the end. A class, not an async generator, so that this module can be compiled
    (`make compile`: mypyc does not compile async generators)."""

    __slots__ = ("_response",)

    def __init__(self, response: UpstreamResponse) -> None:
        self._response = response

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        piece = await self._response.next_chunk()
        if piece is None:
            raise StopAsyncIteration
        return piece
