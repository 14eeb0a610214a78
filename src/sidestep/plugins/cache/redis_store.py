"""The Redis store: cached answers shared by every worker and replica, expiring by Redis's own TTL.

Every call has a short timeout (`cache.redis.timeout`) and no retries: a Redis that is down or slow is a
miss (a lookup) or a lost write (a store), counted (`redis_errors_total`) and logged once per outage, never a
failed request. After a failure the store rests for `REST` seconds — lookups are misses at once, writes are
dropped (`redis_skipped_total`) — so that a Redis that does not answer costs requests no timeout each.
Writes go out in the background, at most `MAX_PENDING` at a time (what overflows is counted,
`redis_dropped_total`).

An entry lives in Redis its TTL plus the configured grace (`cache.stale_grace`, with `serve_stale`): the cache
tells a fresh entry from a stale one by the times the entry carries. A purge walks the prefix with `SCAN`
(never `KEYS`) and matches the tenant on the key itself, so no caller's text becomes a Redis pattern; it leaves
the semantic vectors' stream (`<prefix>semantic:vectors`, `redis_vectors`) alone: a vector whose entry was
purged is a miss where it is found, and dropped there.
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

from sidestep.plugins.cache.store import Entry, Purge, decode_entry, encode_entry, tenant_in

__all__ = ["MAX_PENDING", "REST", "VECTORS", "RedisStore"]

log = logging.getLogger("sidestep.cache")

MAX_PENDING = 256  # background writes in flight; beyond it a write is dropped (and counted)
REST = 1.0  # seconds without calls after a failure
VECTORS = "semantic:vectors"  # under the prefix: the semantic vectors' stream (`redis_vectors`), not an entry
_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


class RedisStore:
    def __init__(
        self,
        url: str,
        prefix: str,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        grace: float = 0.0,
    ) -> None:
        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
        )
        self._prefix = prefix
        self._grace = grace
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
        ttl_ms = max(1, int((entry.expires - entry.created + self._grace) * 1000))
        try:
            await self._redis.set(self._prefix + key, encode_entry(entry), px=ttl_ms)
        except _FAILURES as exc:
            self._failed("write", exc)
        else:
            self._down = False

    async def purge(self, which: Purge) -> int:
        """Drop what `which` matches under the prefix; a Redis failure raises (`OSError`): an admin asked."""
        pattern = _glob_escaped(self._prefix) + "*"
        gone = 0
        try:
            async for raw_key in self._redis.scan_iter(match=pattern, count=500):
                name = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else str(raw_key)
                key = name[len(self._prefix) :]
                if key == VECTORS:
                    continue
                if which.tenant is not None and tenant_in(key) != which.tenant:
                    continue  # decided by the key: no need to read the entry
                entry = None
                if which.route is not None or which.before is not None:
                    raw = await self._redis.get(raw_key)
                    entry = decode_entry(raw) if isinstance(raw, bytes) else None
                    if entry is None:
                        continue
                if which.matches(key, entry):
                    gone += await self._redis.delete(raw_key)
        except _FAILURES as exc:
            self._failed("purge", exc)
            raise OSError(f"Redis failed during the purge: {exc!r}") from exc
        return gone

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

    def reachable(self) -> bool:
        return not self._down

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


def _glob_escaped(text: str) -> str:
    """`text` matched literally in a Redis `MATCH` pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
