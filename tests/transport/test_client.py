"""The upstream client against real loopback servers: pooling, stale-connection retry, timeouts, TLS,
proxies. The upstreams here are small raw asyncio servers so every byte on the wire is under control."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trustme

from sidestep.errors import UpstreamConnectionError, UpstreamError, UpstreamTimeout
from sidestep.transport.body import chunks, read_all
from sidestep.transport.client import HttpClient, PoolLimits
from sidestep.transport.proxy import ProxyConfig
from sidestep.transport.types import Timeouts, UpstreamRequest

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Upstream:
    """A raw HTTP server counting connections; `respond` decides what each request gets."""

    def __init__(self, respond: Callable[[bytes], bytes | None]) -> None:
        self.respond = respond
        self.connections = 0
        self.requests: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                answer = self.respond(head + body)
                if answer is None:
                    writer.close()
                    return
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes = b'{"ok":true}') -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[int]]]:
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def run(handler: Serve, ssl_context: ssl.SSLContext | None = None) -> int:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            await handler(reader, writer)

        server = await asyncio.start_server(tracked, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield run
    for server in servers:
        server.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for writer in writers:
        writer.transport.abort()
    for server in servers:
        await server.wait_closed()


QUICK = Timeouts(connect=2, headers=2, read=2)


def get(url: str, timeouts: Timeouts = QUICK) -> UpstreamRequest:
    return UpstreamRequest("POST", url, [("content-type", "application/json")], b"{}", timeouts)


async def test_keepalive_connections_are_reused(start: Callable[..., Awaitable[int]]) -> None:
    upstream = Upstream(lambda _: ok())
    port = await start(upstream.serve)
    client = HttpClient(proxy_from_env=False)
    for _ in range(5):
        async with await client.send(get(f"http://127.0.0.1:{port}/v1/x")) as response:
            assert response.status == 200
            assert await read_all(response) == b'{"ok":true}'
    await client.aclose()
    assert upstream.connections == 1
    assert upstream.requests[0].startswith(b"POST /v1/x HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"content-length: 2" in upstream.requests[0]


async def test_concurrency_opens_more_connections_up_to_the_limit(start: Callable[..., Awaitable[int]]) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream.connections += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n{}")
                await asyncio.sleep(0.05)
                writer.write(ok())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    upstream = Upstream(lambda _: ok())
    port = await start(slow)
    client = HttpClient(proxy_from_env=False, limits=PoolLimits(max_connections_per_origin=2))

    async def one() -> int:
        async with await client.send(get(f"http://127.0.0.1:{port}/")) as response:
            await read_all(response)
            return response.status

    assert await asyncio.gather(*(one() for _ in range(6))) == [200] * 6
    await client.aclose()
    assert upstream.connections == 2


async def test_stale_pooled_connection_is_retried_once_on_a_fresh_one(start: Callable[..., Awaitable[int]]) -> None:
    upstream = Upstream(lambda _: ok())

    async def close_after_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream.connections += 1
        await reader.readuntil(b"\r\n\r\n{}")
        writer.write(ok())
        await writer.drain()
        writer.close()  # the server drops the keep-alive connection while it sits in our pool

    port = await start(close_after_one)
    client = HttpClient(proxy_from_env=False)
    for _ in range(3):
        async with await client.send(get(f"http://127.0.0.1:{port}/")) as response:
            assert await read_all(response) == b'{"ok":true}'
        await asyncio.sleep(0.02)
    await client.aclose()
    assert upstream.connections == 3


async def test_chunked_and_close_delimited_bodies_stream_piece_by_piece(start: Callable[..., Awaitable[int]]) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n{}")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for i in range(3):
            writer.write(b"9\r\ndata: %d\n\n\r\n" % i)
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def close_delimited(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n{}")
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    client = HttpClient(proxy_from_env=False)
    port = await start(chunked)
    async with await client.send(get(f"http://127.0.0.1:{port}/")) as response:
        pieces = [piece async for piece in chunks(response)]
    assert pieces == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]
    port = await start(close_delimited)
    async with await client.send(get(f"http://127.0.0.1:{port}/")) as response:
        assert await read_all(response) == b"all of it"
    await client.aclose()


async def test_timeouts_name_their_phase(start: Callable[..., Awaitable[int]]) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n{}")
        await asyncio.sleep(2)
        writer.close()

    async def stalls_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n{}")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await writer.drain()
        await asyncio.sleep(2)
        writer.close()

    client = HttpClient(proxy_from_env=False)
    quick = Timeouts(connect=1, headers=0.1, read=0.1)
    port = await start(silent)
    with pytest.raises(UpstreamTimeout) as info:
        await client.send(get(f"http://127.0.0.1:{port}/", quick))
    assert info.value.phase == "headers"
    port = await start(stalls_mid_body)
    response = await client.send(get(f"http://127.0.0.1:{port}/", quick))
    with pytest.raises(UpstreamTimeout) as info:
        await read_all(response)
    assert info.value.phase == "read"
    await response.aclose()
    await client.aclose()


async def test_a_short_read_timeout_after_a_long_one_on_the_same_connection(
    start: Callable[..., Awaitable[int]],
) -> None:
    """The idle watchdog is re-armed lazily; a later, shorter wait must not inherit the earlier long one."""
    first = asyncio.Event()

    async def slow_then_stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n{}")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await first.wait()  # the reader is now waiting with the long timeout armed
        writer.write(b"0\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n{}")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")  # then nothing more
        await asyncio.sleep(30)

    client = HttpClient(proxy_from_env=False)
    port = await start(slow_then_stalled)
    response = await client.send(get(f"http://127.0.0.1:{port}/", Timeouts(connect=1, headers=1, read=20)))
    reading = asyncio.ensure_future(read_all(response))
    await asyncio.sleep(0.05)
    first.set()
    assert await reading == b"abc"
    loop = asyncio.get_running_loop()
    response = await client.send(get(f"http://127.0.0.1:{port}/", Timeouts(connect=1, headers=1, read=0.1)))
    began = loop.time()
    with pytest.raises(UpstreamTimeout):
        await read_all(response)
    assert loop.time() - began < 2  # not the 20 s armed for the first response
    await response.aclose()
    await client.aclose()


async def test_refused_and_dropped_connections_are_connection_errors(start: Callable[..., Awaitable[int]]) -> None:
    async def drop_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n{}")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()
        writer.transport.abort()

    client = HttpClient(proxy_from_env=False)
    with pytest.raises(UpstreamConnectionError, match="refused"):
        await client.send(get("http://127.0.0.1:9/"))
    port = await start(drop_mid_body)
    response = await client.send(get(f"http://127.0.0.1:{port}/"))
    with pytest.raises(UpstreamConnectionError):
        await read_all(response)
    await response.aclose()
    await client.aclose()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


async def tls_upstream(start: Callable[..., Awaitable[int]], ca: trustme.CA) -> int:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
    return await start(Upstream(lambda _: ok(b"secure")).serve, server_ctx)


async def test_tls_verifies_certificates(start: Callable[..., Awaitable[int]], ca: trustme.CA) -> None:
    port = await tls_upstream(start, ca)
    untrusting = HttpClient(proxy_from_env=False)
    with pytest.raises(UpstreamConnectionError, match="certificate"):
        await untrusting.send(get(f"https://localhost:{port}/"))
    await untrusting.aclose()
    trusting_ctx = ssl.create_default_context()
    ca.configure_trust(trusting_ctx)
    client = HttpClient(proxy_from_env=False, ssl_context=trusting_ctx)
    async with await client.send(get(f"https://localhost:{port}/")) as response:
        assert await read_all(response) == b"secure"
    await client.aclose()


async def test_https_through_a_connect_proxy_with_credentials(
    start: Callable[..., Awaitable[int]], ca: trustme.CA
) -> None:
    target = await tls_upstream(start, ca)
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    proxy_port = await start(proxy)
    trusting_ctx = ssl.create_default_context()
    ca.configure_trust(trusting_ctx)
    env = {"HTTPS_PROXY": f"http://user:p%40ss@127.0.0.1:{proxy_port}", "NO_PROXY": "example.internal"}
    client = HttpClient(ssl_context=trusting_ctx, env=env)
    async with await client.send(get(f"https://localhost:{target}/v1")) as response:
        assert await read_all(response) == b"secure"
    await client.aclose()
    assert seen[0].startswith(f"CONNECT localhost:{target} HTTP/1.1\r\n".encode())
    assert b"Proxy-Authorization: Basic dXNlcjpwQHNz" in seen[0]  # user:p@ss


def test_no_proxy_rules() -> None:
    proxies = ProxyConfig(
        {"https_proxy": "http://proxy:3128", "no_proxy": "internal.corp, .svc:8443, 10.0.0.0/8, localhost"}
    )
    assert proxies.for_target("https", "api.openai.com", 443) is not None
    assert proxies.for_target("https", "llm.internal.corp", 443) is None
    assert proxies.for_target("https", "a.svc", 8443) is None
    assert proxies.for_target("https", "a.svc", 443) is not None
    assert proxies.for_target("https", "10.1.2.3", 443) is None
    assert proxies.for_target("http", "api.openai.com", 80) is None  # no HTTP_PROXY set
    assert ProxyConfig({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}).for_target("https", "x", 443) is None


async def test_plain_http_through_a_proxy_uses_absolute_form(start: Callable[..., Awaitable[int]]) -> None:
    upstream = Upstream(lambda _: ok(b"via proxy"))
    proxy_port = await start(upstream.serve)
    client = HttpClient(env={"HTTP_PROXY": f"http://127.0.0.1:{proxy_port}"})
    async with await client.send(get("http://upstream.example:8000/v1/chat")) as response:
        assert await read_all(response) == b"via proxy"
    await client.aclose()
    assert upstream.requests[0].startswith(b"POST http://upstream.example:8000/v1/chat HTTP/1.1\r\n")


async def test_a_short_headers_timeout_after_a_long_wait_on_the_same_connection(
    start: Callable[..., Awaitable[int]],
) -> None:
    """The headers wait shares the connection's lazily re-armed watchdog with body reads."""

    async def answers_once_then_stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n{}")
        await asyncio.sleep(0.05)  # the client waits for headers with the long timeout armed
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await reader.readuntil(b"\r\n\r\n{}")
        await asyncio.sleep(30)  # the second request never gets its headers

    client = HttpClient(proxy_from_env=False)
    port = await start(answers_once_then_stalls)
    response = await client.send(get(f"http://127.0.0.1:{port}/", Timeouts(connect=1, headers=20, read=20)))
    assert await read_all(response) == b"ok"
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(UpstreamTimeout) as info:
        await client.send(get(f"http://127.0.0.1:{port}/", Timeouts(connect=1, headers=0.1, read=20)))
    assert info.value.phase == "headers"
    assert loop.time() - began < 2  # not the 20 s armed for the first request
    await client.aclose()


async def test_response_headers_are_read_from_the_final_head(start: Callable[..., Awaitable[int]]) -> None:
    """Headers are parsed only when asked for, from the bytes of the head: interim heads are skipped,
    repeated names joined, values trimmed, and a head split across reads still reads whole."""

    async def interim_then_split_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n{}")
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nX-Seen: one\r\n")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"x-seen: two\r\nRetry-After:  7 \r\ncontent-length: 2\r\n\r\nno")
        await writer.drain()

    client = HttpClient(proxy_from_env=False)
    port = await start(interim_then_split_head)
    async with await client.send(get(f"http://127.0.0.1:{port}/")) as response:
        assert response.status == 429
        assert await read_all(response) == b"no"
        assert response.headers == {"x-seen": "one, two", "retry-after": "7", "content-length": "2"}
    await client.aclose()


async def test_piped_bodies_end_release_fail_and_time_out_like_read_ones(start: Callable[..., Awaitable[int]]) -> None:
    """`pipe()` hands pieces over as they arrive and then frees the connection; a dropped connection and a
    silent one fail as reads do (a budget still in force is honoured piece by piece)."""
    mode: list[str] = []
    connections: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while True:
            await reader.readuntil(b"\r\n\r\n{}")
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
            await writer.drain()
            if mode[-1] == "whole":
                await asyncio.sleep(0.02)
                writer.write(b"3\r\ndef\r\n0\r\n\r\n")
            elif mode[-1] == "drop":
                writer.transport.abort()
                return
            else:
                await asyncio.sleep(30)  # silent

    client = HttpClient(proxy_from_env=False)
    port = await start(serve)
    url = f"http://127.0.0.1:{port}/"
    pieces: list[bytes] = []
    mode.append("whole")
    for _ in range(2):  # the second exchange reuses the connection the first one released
        await (await client.send(get(url, Timeouts(connect=1, headers=1, read=1)))).pipe(pieces.append)
    assert pieces == [b"abc", b"def"] * 2
    assert len(connections) == 1
    mode.append("drop")
    response = await client.send(get(url, Timeouts(connect=1, headers=1, read=1)))
    with pytest.raises(UpstreamError):
        await response.pipe(pieces.append)
    await response.aclose()
    port = await start(serve)  # a fresh upstream for the silent cases
    mode.append("silent")
    for budget in (None, 0.15):
        request = get(f"http://127.0.0.1:{port}/", Timeouts(connect=1, headers=1, read=0.15 if budget is None else 20))
        request.budget = budget
        response = await client.send(request)
        began = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamTimeout) as info:
            await response.pipe(pieces.append)
        assert info.value.phase == "read" and asyncio.get_running_loop().time() - began < 2
        await response.aclose()
    await client.aclose()


async def test_a_body_whole_with_its_headers_is_handed_over_in_one_call(start: Callable[..., Awaitable[int]]) -> None:
    """`Buffered`: `buffered()` is the body only once all of it is in, and only once; `read_all` takes it."""
    rest = asyncio.Event()

    async def halves(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n{}")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nfirst")
        await rest.wait()
        writer.write(b"-two")
        await reader.readuntil(b"\r\n\r\n{}")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nwhole")
        await asyncio.sleep(30)

    client = HttpClient(proxy_from_env=False)
    port = await start(halves)
    response = await client.send(get(f"http://127.0.0.1:{port}/"))
    assert response.buffered() is None  # half of it: read piece by piece
    rest.set()
    assert await read_all(response) == b"first-two"
    response = await client.send(get(f"http://127.0.0.1:{port}/"))  # the same connection, back in the pool
    for _ in range(100):
        if response._conn.complete:
            break
        await asyncio.sleep(0.01)
    assert response.buffered() == b"whole"
    assert response.buffered() is None  # handed over once; the connection is released
    assert await read_all(response) == b""
    await client.aclose()
