"""Where cached answers live: the `Store` seam, and the in-memory store (per process, the default).

An `Entry` is an answer as its client got it (its format, its body) with the times it was stored and
expires: a hit in another format or as a stream is rewritten from it (`sidestep.plugins.cache.replay`).
The memory store is bounded by entries and by bytes, evicts the least recently used, and drops what has
expired when it is looked up; the clock is injected (tests move a fake one). A store keeps an entry `grace`
seconds past its expiry (0 unless `cache.serve_stale` is set): the cache tells fresh from stale, and answers
from a stale one only when every target of the route failed. `purge` drops what a `Purge` matches (the admin
endpoint).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import msgspec

__all__ = ["Entry", "MemoryStore", "Purge", "Store", "decode_entry", "encode_entry", "tenant_in"]

_OVERHEAD = 200  # bytes an entry costs besides its body and key (the entry object, the dict slot)


class Entry:
    __slots__ = ("body", "created", "dialect", "expires", "route")

    def __init__(self, dialect: str, body: bytes, created: float, expires: float, route: str = "") -> None:
        self.dialect = dialect  # the name of the client format the body is in (`formats.named`)
        self.body = body
        self.created = created
        self.expires = expires
        self.route = route  # the route or model the request named (purge by route)


def encode_entry(entry: Entry) -> bytes:
    """An entry as bytes (what a shared store keeps)."""
    return msgspec.msgpack.encode((entry.dialect, entry.created, entry.expires, entry.body, entry.route))


def decode_entry(raw: bytes) -> Entry | None:
    """The entry `raw` holds, or None when it is not one (another version wrote it, or it is damaged)."""
    try:
        fields = msgspec.msgpack.decode(raw)
    except (msgspec.DecodeError, TypeError, ValueError, RecursionError):  # nested deep: damaged, not a crash
        return None
    if not isinstance(fields, list) or len(fields) not in (4, 5):  # 4: written before entries named a route
        return None
    dialect, created, expires, body = fields[:4]
    route = fields[4] if len(fields) == 5 else ""
    if not (isinstance(dialect, str) and isinstance(body, bytes) and isinstance(route, str)):
        return None
    if not (isinstance(created, int | float) and isinstance(expires, int | float)):
        return None
    return Entry(dialect, body, float(created), float(expires), route)


def tenant_in(key: str) -> str:
    """The tenant a key is filed under (`kind:tenant:digest`; a tenant may hold colons, a digest does not)."""
    return key.partition(":")[2].rpartition(":")[0]


class Purge:
    """Which entries an admin purge drops: all of these that are set must hold."""

    __slots__ = ("before", "route", "tenant")

    def __init__(self, tenant: str | None = None, route: str | None = None, before: float | None = None) -> None:
        self.tenant = tenant
        self.route = route
        self.before = before  # stored before this time (the cache's clock)

    def matches(self, key: str, entry: Entry | None) -> bool:
        """Whether the entry under `key` goes; `entry` None: decide by the key alone (None: it cannot)."""
        if self.tenant is not None and tenant_in(key) != self.tenant:
            return False
        if entry is None:
            return self.route is None and self.before is None
        if self.route is not None and entry.route != self.route:
            return False
        return self.before is None or entry.created < self.before


class Store(Protocol):
    """`get` may await I/O; `put` never does (a shared store writes in the background)."""

    async def get(self, key: str) -> Entry | None: ...

    def put(self, key: str, entry: Entry) -> None: ...

    async def purge(self, which: Purge) -> int:
        """Drop the entries `which` matches; how many went. Raises `OSError` when the store cannot be reached."""
        ...

    def reachable(self) -> bool:
        """Whether its last call was answered (a `get` that found nothing means the entry is not there)."""
        ...

    def counters(self) -> dict[str, float]:
        """What the store counts, for the metrics page: a name ending in `_total` is a counter, else a gauge."""
        ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class MemoryStore:
    """Entries in one process, least recently used first out, bounded by `max_entries` and `max_bytes`."""

    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float], grace: float = 0.0) -> None:
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._grace = grace
        self.bytes = 0
        self.evictions = 0  # pushed out to make room
        self.expirations = 0  # found expired when looked up

    async def get(self, key: str) -> Entry | None:
        return self.lookup(key)

    def lookup(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires + self._grace <= self._clock():
            self._drop(key, entry)
            self.expirations += 1
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= _size(key, old)
        self._entries[key] = entry
        self.bytes += _size(key, entry)
        while len(self._entries) > self._max_entries or self.bytes > self._max_bytes:
            oldest, evicted = self._entries.popitem(last=False)
            self.bytes -= _size(oldest, evicted)
            self.evictions += 1

    async def purge(self, which: Purge) -> int:
        gone = [(key, entry) for key, entry in self._entries.items() if which.matches(key, entry)]
        for key, entry in gone:
            self._drop(key, entry)
        return len(gone)

    def __len__(self) -> int:
        return len(self._entries)

    def counters(self) -> dict[str, float]:
        return {
            "entries": len(self._entries),
            "bytes": self.bytes,
            "evictions_total": self.evictions,
            "expirations_total": self.expirations,
        }

    def reachable(self) -> bool:
        return True

    def start(self) -> None:
        """Nothing runs in the background."""

    def close(self) -> None:
        """Nothing to release: the entries go with the process (or to a reload's successor)."""

    def _drop(self, key: str, entry: Entry) -> None:
        del self._entries[key]
        self.bytes -= _size(key, entry)


def _size(key: str, entry: Entry) -> int:
    return len(key) + len(entry.body) + _OVERHEAD
