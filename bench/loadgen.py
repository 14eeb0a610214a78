"""A small load generator for what wrk cannot measure: latency at a fixed request rate (open loop), time to
first byte of streams, and whole streams for per-chunk cost. Raw asyncio protocol + httptools, so its own
cost is small and the same for every contender.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httptools

from bench.payloads import SDK_HEADERS

__all__ = ["Latencies", "closed_loop", "fixed_rate", "sequence", "ttfb"]


@dataclass(slots=True)
class Latencies:
    seconds: list[float] = field(default_factory=list)
    errors: int = 0
    sent: int = 0
    elapsed: float = 0.0
    events: int = 0  # SSE events received (streams)

    def merge(self, other: Latencies) -> None:
        """Pool another run's samples into this one (runs of one contender spread over several rounds)."""
        self.seconds.extend(other.seconds)
        self.errors += other.errors
        self.sent += other.sent
        self.elapsed += other.elapsed
        self.events += other.events

    def percentile(self, p: float) -> float:
        ordered = sorted(self.seconds)
        if not ordered:
            return float("nan")
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]


class _Client(asyncio.Protocol):
    """One keep-alive connection; `request()` resolves with (status, time of first body byte) at the end."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.done: asyncio.Future[tuple[int, float]] | None = None
        self.first_byte = 0.0
        self.closed = False
        self.events = 0
        self.sent_at = 0.0
        self.on_done: Callable[[_Client, int], None] | None = None  # callback mode (fixed_rate)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.done is not None and not self.done.done():
                self.done.set_exception(exc)

    def on_body(self, body: bytes) -> None:
        if not self.first_byte:
            self.first_byte = time.perf_counter()
        self.events += body.count(b"\n\n")

    def on_message_complete(self) -> None:
        if self.on_done is not None:
            self.on_done(self, self.parser.get_status_code())
            return
        if self.done is not None and not self.done.done():
            self.done.set_result((self.parser.get_status_code(), self.first_byte))

    def send(self, payload: bytes, since: float | None = None) -> None:
        """Write a request; its latency runs from `since` (when it was due) or from now."""
        assert self.transport is not None
        self.sent_at = time.perf_counter() if since is None else since
        self.transport.write(payload)

    def request(self, payload: bytes) -> asyncio.Future[tuple[int, float]]:
        assert self.transport is not None
        self.first_byte = 0.0
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self.done


def request_bytes(path: str, body: bytes, port: int) -> bytes:
    """A POST as the official OpenAI SDK writes it (its dozen headers included)."""
    sdk = "".join(f"{name}: {value}\r\n" for name, value in SDK_HEADERS)
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n{sdk}"
        f"authorization: Bearer sk-bench-7f3a9c2e4b8d1f6a0c5e9b3d7a2f4c8e\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connect(port: int) -> _Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(_Client, "127.0.0.1", port)
    return client


async def fixed_rate(
    port: int, path: str, body: bytes, rate: float, seconds: float, connections: int = 64
) -> Latencies:
    """Send at `rate` per second for `seconds` on a fixed set of keep-alive connections (as wrk2 does),
    whatever the answers do. A request that finds every connection busy waits in a queue and its latency
    runs from when it was due, so a server that falls behind is charged for the queue it causes
    (no coordinated omission); an on-time request's latency runs from when it was written. Completions
    are recorded in protocol callbacks (no task or future per request), so the generator stays cheap."""
    payload = request_bytes(path, body, port)
    result = Latencies()
    idle: deque[_Client] = deque()
    queued: deque[float] = deque()  # due times of requests waiting for a connection
    state = {"sending": True}
    finished = asyncio.Event()

    def done(client: _Client, status: int) -> None:
        result.seconds.append(time.perf_counter() - client.sent_at)
        if status != 200:
            result.errors += 1
        if queued:
            client.send(payload, since=queued.popleft())
        else:
            idle.append(client)
        if not state["sending"] and len(result.seconds) >= result.sent:
            finished.set()

    clients = [await _connect(port) for _ in range(connections)]
    for client in clients:
        client.on_done = done
    idle.extend(clients)
    total = int(rate * seconds)
    start = time.perf_counter() + 0.01
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        if idle:
            idle.popleft().send(payload)
        else:
            queued.append(due)
        result.sent += 1
    state["sending"] = False
    if len(result.seconds) < result.sent:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), 30)
    result.errors += result.sent - len(result.seconds)
    result.elapsed = time.perf_counter() - start
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    return result


async def closed_loop(
    port: int, path: str, body: bytes, connections: int, seconds: float, count: int | None = None
) -> Latencies:
    """As many requests as `connections` keep-alive connections can carry in `seconds` (a small-scale wrk
    for smoke runs), or exactly `count` of them."""
    payload = request_bytes(path, body, port)
    result = Latencies()
    stop = time.perf_counter() + seconds
    issued = 0

    async def worker() -> None:
        nonlocal issued
        client = await _connect(port)
        while time.perf_counter() < stop and (count is None or issued < count):
            issued += 1
            began = time.perf_counter()
            status, _ = await client.request(payload)
            result.seconds.append(time.perf_counter() - began)
            result.sent += 1
            if status != 200:
                result.errors += 1
        result.events += client.events
        assert client.transport is not None
        client.transport.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    result.elapsed = time.perf_counter() - began
    return result


async def ttfb(port: int, path: str, body: bytes, count: int) -> Latencies:
    """Time to the first body byte of `count` sequential requests on one connection (streams: first event)."""
    payload = request_bytes(path, body, port)
    client = await _connect(port)
    result = Latencies()
    for _ in range(count):
        began = time.perf_counter()
        status, first = await client.request(payload)
        result.sent += 1
        if status != 200 or not first:
            result.errors += 1
            continue
        result.seconds.append(first - began)
    assert client.transport is not None
    client.transport.close()
    return result


async def sequence(port: int, path: str, bodies: list[bytes]) -> Latencies:
    """Each of `bodies` in turn on one keep-alive connection, every request's latency recorded (the cache
    phase: a different body each time is a miss, the same one a hit)."""
    payloads = [request_bytes(path, body, port) for body in bodies]
    client = await _connect(port)
    result = Latencies()
    began = time.perf_counter()
    for payload in payloads:
        sent = time.perf_counter()
        status, _ = await client.request(payload)
        result.seconds.append(time.perf_counter() - sent)
        result.sent += 1
        if status != 200:
            result.errors += 1
    result.elapsed = time.perf_counter() - began
    assert client.transport is not None
    client.transport.close()
    return result
