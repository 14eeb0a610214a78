"""Flow control of one client connection, shared by the connection and the request cycle that answers it.

Writes: the transport calls `pause_writing` when the client's socket buffer is full and `resume_writing`
once it drained; a streamed body waits in `drain()`, a piped one is told through `on_resume`. A client that
takes nothing for `write_timeout` seconds is cut off: it must not hold a stream (and its upstream connection)
forever. Reads: reading pauses while `MAX_QUEUED` pipelined requests wait, and resumes below half of that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["MAX_QUEUED", "FlowControl"]

MAX_QUEUED = 16  # pipelined requests parsed ahead before reading pauses


def _gone() -> None:
    pass


class FlowControl:
    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        write_timeout: float,
        on_stall: Callable[[], None],
    ) -> None:
        self.transport = transport
        self.loop = loop
        self.write_timeout = write_timeout
        self.on_stall = on_stall  # the client read nothing for write_timeout
        self.write_paused = False
        self.read_paused = False
        self.on_resume: Callable[[], None] | None = None  # a piped body waiting for the client to drain
        self._drain: asyncio.Future[None] | None = None
        self._stall: asyncio.TimerHandle | None = None  # armed while the client's socket buffer is full

    # -- reading --------------------------------------------------------------------------------------

    def pause_reading(self) -> None:
        self.transport.pause_reading()
        self.read_paused = True

    def resume_reading(self) -> None:
        self.transport.resume_reading()
        self.read_paused = False

    # -- writing --------------------------------------------------------------------------------------

    def pause_writing(self) -> None:
        self.write_paused = True
        self._stall = self.loop.call_later(self.write_timeout, self.on_stall)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        if self.on_resume is not None:
            self.on_resume()

    async def drain(self) -> None:
        """Wait until the client took what was written (called while writing is paused)."""
        self._drain = self.loop.create_future()
        await self._drain
        self._drain = None

    def lost(self) -> None:
        """The connection is gone: no timer left behind, a waiting writer learns it, and no callback keeps
        the connection (or a piped body) alive."""
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        self.on_stall = _gone
        self.on_resume = None
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionResetError("client disconnected"))
