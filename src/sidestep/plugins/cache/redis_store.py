"""The Redis store: cached answers shared by every worker and replica, expiring by Redis's own TTL.

Every call has a short timeout (`cache.redis.timeout`) and no retries: a Redis that is down or slow is a
miss (a lookup) or a lost write (a store), counted (`redis_errors_total`) and logged once per outage, never a
failed request. After a failure the store rests for `REST` seconds — lookups are misses at once, writes are
dropped (`redis_skipped_total`) — so that a Redis that does not answer costs requests no timeout each.
Writes go out in the background, at most `MAX_PENDING` at a time (what overflows is counted,
`redis_dropped_total`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from sidestep.plugins.cache.store import Entry, decode_entry, encode_entry

__all__ = ["MAX_PENDING", "REST", "RedisStore"]

log = logging.getLogger("sidestep.cache")

MAX_PENDING = 256  # background writes in flight; beyond it a write is dropped (and counted)
REST = 1.0  # seconds without calls after a failure
_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


class RedisStore:
    def __init__(self, url: str, prefix: str, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
        )
        self._prefix = prefix
        self._pending: set[asyncio.Task[None]] = set()
        self._clock = clock
        self._down = False  # the last call failed: the next failure is not logged again
        self._resting_until = 0.0
        self.errors = 0
        self.dropped = 0
        self.skipped = 0

    async def get(self, key: str) -> Entry | None:
        if self._resting():
            return None
        try:
            raw = await self._redis.get(self._prefix + key)
        except _FAILURES as exc:
            self._failed("read", exc)
            return None
        self._down = False
        return decode_entry(raw) if isinstance(raw, bytes) else None

    def put(self, key: str, entry: Entry) -> None:
        if self._resting():
            return
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        task = asyncio.get_running_loop().create_task(self._set(key, entry))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _set(self, key: str, entry: Entry) -> None:
        ttl_ms = max(1, int((entry.expires - entry.created) * 1000))
        try:
            await self._redis.set(self._prefix + key, encode_entry(entry), px=ttl_ms)
        except _FAILURES as exc:
            self._failed("write", exc)
        else:
            self._down = False

    def _resting(self) -> bool:
        if self._resting_until and self._clock() < self._resting_until:
            self.skipped += 1
            return True
        return False

    def _failed(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        self._resting_until = self._clock() + REST
        if not self._down:
            self._down = True
            log.warning("cache: Redis %s failed, serving misses until it is back: %r", what, exc)

    def counters(self) -> dict[str, float]:
        return {
            "redis_errors_total": self.errors,
            "redis_skipped_total": self.skipped,
            "redis_dropped_total": self.dropped,
        }

    def start(self) -> None:
        """Connections open on first use, on the running loop."""

    def close(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a config built and dropped off-line): nothing was opened
        task = loop.create_task(self._redis.aclose())
        self._pending.add(task)  # held, so the close is not collected half-way
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for the background writes (tests, and a clean shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
