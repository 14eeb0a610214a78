"""Serve an ASGI application behind the gateway's endpoint seam: a fully read `Request` in, a `Response` or a
`StreamingResponse` out.

sidestep's server is its own httptools server, not an ASGI server; the `mcp` SDK's Streamable HTTP server
transport (`StreamableHTTPSessionManager.handle_request`) is an ASGI application. This adapter is the one place
the two meet: it builds the ASGI scope from the request (extra keys ride along in the scope, which the SDK hands
to its handlers as `ctx.request.scope`), gives the application the body in one `http.request` message, and turns
what it sends into our response — the whole body when the first body message is the last (a JSON answer), else a
stream fed as the application sends (an SSE stream). When the client leaves a stream, the application hears
`http.disconnect`, and its task is cancelled if it does not end by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from sidestep.server.types import Request, Response, StreamingResponse

__all__ = ["ASGIApp", "serve_asgi"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

_HOP = {"content-length", "transfer-encoding", "connection"}  # our server frames the body itself
_GRACE = 1.0  # seconds an application has to end by itself once its client left


async def serve_asgi(
    app: ASGIApp, request: Request, extra: Mapping[str, Any] | None = None
) -> Response | StreamingResponse:
    """Run `app` for `request`; `extra` is added to the scope."""
    call = _Call(app, request, extra or {})
    return await call.run()


class _Call:
    def __init__(self, app: ASGIApp, request: Request, extra: Mapping[str, Any]) -> None:
        self._app = app
        self._request = request
        self._scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version,
            "method": request.method,
            "scheme": "http",
            "path": request.path,
            "raw_path": request.path.encode("latin-1"),
            "query_string": request.query.encode("latin-1"),
            "root_path": "",
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()],
            "client": request.client,
            "server": None,
            **extra,
        }
        self._read = False
        self._gone = asyncio.Event()  # the client left (or the response is over): `receive` says disconnect
        self._head: tuple[int, list[tuple[str, str]]] | None = None
        self._first: asyncio.Future[tuple[bytes, bool]] = asyncio.get_running_loop().create_future()
        self._pieces: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def run(self) -> Response | StreamingResponse:
        task = asyncio.get_running_loop().create_task(self._serve())
        task.add_done_callback(self._ended)
        try:
            body, more = await asyncio.shield(self._first)
        except BaseException:
            await _cancel(task)
            raise
        assert self._head is not None
        status, headers = self._head
        if not more:
            self._gone.set()
            await task
            return Response(status, body, headers)
        return StreamingResponse(status, self._stream(body, task), headers)

    async def _serve(self) -> None:
        await self._app(self._scope, self._receive, self._send)

    async def _stream(self, first: bytes, task: asyncio.Task[None]) -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            while (piece := await self._pieces.get()) is not None:
                yield piece
        finally:
            self._gone.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), _GRACE)
            await _cancel(task)

    async def _receive(self) -> Message:
        if not self._read:
            self._read = True
            return {"type": "http.request", "body": self._request.body, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ())]
            self._head = (message["status"], [(k, v) for k, v in headers if k.lower() not in _HOP])
        elif kind == "http.response.body":
            body, more = bytes(message.get("body", b"")), bool(message.get("more_body", False))
            if not self._first.done():
                self._first.set_result((body, more))
            elif self._gone.is_set():
                return
            else:
                if body:
                    self._pieces.put_nowait(body)
                if not more:
                    self._pieces.put_nowait(None)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The application returned or failed: a response it never began is an error, a stream it left open ends."""
        if not self._first.done():
            exc = None if task.cancelled() else task.exception()
            self._first.set_exception(exc or RuntimeError("the application ended without a response"))
        self._pieces.put_nowait(None)


async def _cancel(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(BaseException):
        await task
