"""The ASGI adapter behind the endpoint seam: whole answers, streams, failures and a client that leaves."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sidestep.plugins.mcp.asgi import serve_asgi
from sidestep.server.types import Request, Response, StreamingResponse


def _request(body: bytes = b"{}") -> Request:
    headers = {"content-type": "application/json", "x-a": "1"}
    return Request("POST", "/mcp", "q=1", headers, body, client=("127.0.0.1", 5))


async def test_a_whole_answer_is_a_response_with_scope_extras() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope=scope, message=await receive())
        headers = [(b"content-type", b"application/json"), (b"content-length", b"2"), (b"mcp-session-id", b"s1")]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    response = await serve_asgi(app, _request(b'{"a":1}'), {"who": "alice"})
    assert isinstance(response, Response)
    assert (response.status, response.body) == (202, b"{}")
    assert response.headers == [("content-type", "application/json"), ("mcp-session-id", "s1")]  # no length twice
    scope = seen["scope"]
    assert (scope["method"], scope["path"], scope["query_string"], scope["who"]) == ("POST", "/mcp", b"q=1", "alice")
    assert (b"x-a", b"1") in scope["headers"]
    assert seen["message"] == {"type": "http.request", "body": b'{"a":1}', "more_body": False}


async def test_a_stream_is_relayed_as_sent_and_its_client_leaving_is_heard() -> None:
    heard: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True})
        heard.append((await receive())["type"])  # blocks until the client has left

    response = await serve_asgi(app, _request())
    assert isinstance(response, StreamingResponse)
    body: Any = response.body
    assert [await body.__anext__(), await body.__anext__()] == [b"data: 1\n\n", b"data: 2\n\n"]
    await body.aclose()
    assert heard == ["http.disconnect"]


async def test_a_stream_the_application_ends_ends() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b", "more_body": False})

    response = await serve_asgi(app, _request())
    assert isinstance(response, StreamingResponse)
    assert [piece async for piece in response.body] == [b"a", b"b"]


async def test_an_application_that_fails_before_answering_raises() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        await serve_asgi(app, _request())

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="ended without a response"):
        await serve_asgi(silent, _request())
