"""Semantic vectors shared through Redis: written next to the entries, indexed in each process, kept in step.

The Redis here has no vector module, so each process keeps its own index (`semantic.SemanticIndex`) and Redis
carries the vectors between them: a stream under the cache's prefix (`<prefix>semantic:vectors`). A process
that stores an answer with a vector appends a record (`XADD`, trimmed to about `max_len` records, the stream's
life pushed to the longest an entry can live); every process follows the stream from the last record it read
(`XREAD BLOCK`), from the start when it starts. A stream is kept by Redis, so a process that was busy or slow
misses nothing; after any Redis failure the follower reads the whole stream again (a Redis that restarted
empty, or with other history, is read from its start) — records it already has change nothing.

A record is (version, origin, bucket, entry key, expiry in wall-clock seconds, float32 vector). What comes out
of Redis is checked before it is indexed: a record that does not decode, names too long, a vector of no or too
many dimensions, not finite or of length zero, or a key filed under another tenant than its bucket's, is
skipped and counted (`semantic_feed_corrupt_total`); a record already expired is skipped. Records this process
wrote are skipped (it indexed them when it wrote them). Evictions are not sent: a vector whose entry is gone
(evicted, purged, expired in Redis) is a miss where it is found, and dropped there.

A Redis outage is logged once and counted (`semantic_feed_errors_total`); writes are dropped while it lasts
(`semantic_feed_dropped_total`, as are those beyond `MAX_PENDING` in flight); the follower rests `REST`
seconds between tries and resumes when Redis is back. Nothing here fails a request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import numpy as np
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from sidestep.plugins.cache.redis_store import VECTORS
from sidestep.plugins.cache.semantic import SemanticIndex, Vector
from sidestep.plugins.cache.store import tenant_in

__all__ = ["MAX_DIMS", "MAX_PENDING", "REST", "STREAM", "RedisVectorFeed", "decode_record", "encode_record"]

log = logging.getLogger("sidestep.cache")

STREAM = VECTORS  # the stream's name under the cache's prefix
MAX_DIMS = 16_384  # more dimensions than any embedding model has: a damaged record
MAX_NAME = 1024  # characters in a bucket or an entry key
MAX_PENDING = 64  # background writes in flight
REST = 1.0  # seconds between tries after a failure
BATCH = 256  # records read at a time
_VERSION = 1
_FIELD = b"r"
_FAILURES = (RedisError, OSError, asyncio.TimeoutError)

Record = tuple[str, str, str, float, Vector]  # (origin, bucket, key, expires, vector)
_Wire = tuple[int, str, str, str, float, bytes]  # (version, origin, bucket, key, expires, vector's bytes)


def encode_record(origin: str, bucket: str, key: str, expires: float, vector: Vector) -> bytes:
    return msgspec.msgpack.encode((_VERSION, origin, bucket, key, expires, vector.astype("<f4").tobytes()))


def decode_record(raw: object) -> Record | None:
    """The record `raw` holds, its vector of unit length; None when it is not a sound one."""
    if not isinstance(raw, bytes) or len(raw) > MAX_DIMS * 4 + 4 * MAX_NAME:
        return None
    try:  # typed: a list nested a thousand deep is refused at its first level, not recursed into
        fields = msgspec.msgpack.decode(raw, type=_Wire)
    except (msgspec.DecodeError, TypeError, ValueError, RecursionError):
        return None
    version, origin, bucket, key, expires, data = fields
    if version != _VERSION:
        return None
    if not all(0 < len(text) <= MAX_NAME for text in (origin, bucket, key)):
        return None
    if not math.isfinite(expires) or not 0 < len(data) <= MAX_DIMS * 4 or len(data) % 4:
        return None
    if not bucket.startswith(tenant_in(key) + ":"):  # a key of one tenant filed in another's bucket
        return None
    vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
    with np.errstate(all="ignore"):  # a norm that overflows is refused below, not warned about
        norm = float(np.linalg.norm(vector))
    if not math.isfinite(norm) or norm == 0.0:
        return None
    return origin, bucket, key, float(expires), vector / norm


class RedisVectorFeed:
    def __init__(
        self,
        url: str,
        prefix: str,
        timeout: float,
        index: SemanticIndex,
        clock: Callable[[], float],
        *,
        max_len: int,
        life: float,
        block: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        options: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "retry_on_timeout": False}
        self._writer = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, **options)
        # The follower's reads block up to `block` seconds: its socket waits that long and the usual timeout.
        self._reader = Redis.from_url(url, socket_timeout=block + timeout, socket_connect_timeout=timeout, **options)
        self._stream = prefix + STREAM
        self._index = index
        self._clock = clock
        self._max_len = max_len
        self._life_ms = max(1, int(life * 1000))  # the longest an entry lives (max_ttl and grace)
        self._block_ms = max(1, int(block * 1000))
        self._sleep = sleep
        self._origin = os.urandom(8).hex()  # this process's records are not read back
        self._last: bytes | str = "0"
        self._down = False
        self._follower: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self.published = 0
        self.read = 0
        self.corrupt = 0
        self.errors = 0
        self.dropped = 0

    def publish(self, bucket: str, key: str, vector: Vector, expires: float) -> None:
        """Send a vector to the other processes, in the background (dropped, counted, when Redis is down)."""
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        record = encode_record(self._origin, bucket, key, expires, vector)
        task = asyncio.get_running_loop().create_task(self._append(record))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _append(self, record: bytes) -> None:
        try:
            async with self._writer.pipeline(transaction=False) as pipe:
                pipe.xadd(self._stream, {_FIELD: record}, maxlen=self._max_len, approximate=True)
                pipe.pexpire(self._stream, self._life_ms)
                await pipe.execute()
        except _FAILURES as exc:
            self._failed("write", exc)
            self.dropped += 1
        else:
            self.published += 1

    async def follow(self) -> None:
        """Read the stream for as long as the feed runs: what is there, then what comes."""
        while True:
            try:
                batches: Any = await self._reader.xread({self._stream: self._last}, count=BATCH, block=self._block_ms)
            except _FAILURES as exc:
                self._failed("read", exc)
                self._last = "0"  # Redis may have restarted empty or with other history: read it all again
                await self._sleep(REST)
                continue
            if self._down:
                self._down = False
                log.warning("cache: Redis is back, following the semantic vectors again")
            for _stream, records in batches or ():
                for record_id, fields in records:
                    self._last = record_id
                    self._take(fields)

    def _take(self, fields: object) -> None:
        record = decode_record(fields.get(_FIELD)) if isinstance(fields, dict) else None
        if record is None:
            self.corrupt += 1
            return
        origin, bucket, key, expires, vector = record
        if origin == self._origin or expires <= self._clock():
            return
        self._index.add(bucket, key, vector, expires)
        self.read += 1

    def _failed(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        if not self._down:
            self._down = True
            log.warning("cache: Redis %s of the semantic vectors failed, each process keeps its own: %r", what, exc)

    def counters(self) -> dict[str, float]:
        return {
            "semantic_feed_published_total": self.published,
            "semantic_feed_read_total": self.read,
            "semantic_feed_corrupt_total": self.corrupt,
            "semantic_feed_errors_total": self.errors,
            "semantic_feed_dropped_total": self.dropped,
        }

    def start(self) -> None:
        if self._follower is None:
            self._follower = asyncio.get_running_loop().create_task(self.follow())

    def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            self._follower = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for client in (self._writer, self._reader):
            task = loop.create_task(client.aclose())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for the background writes (tests, and a clean shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
