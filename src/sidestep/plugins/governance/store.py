"""Budget spend kept beyond one process: a SQLite file shared by a gateway's workers and its restarts.

The request path never touches the file. Spend is counted in memory; every `interval` seconds a worker
thread adds each scope's spend since the last flush to the file (one transaction) and reads back every
current period's total, which the scopes then enforce. So budgets survive restarts, and with
`--workers N` every worker sees the others' spend within about `interval` — a burst can overshoot a budget
by what the workers spend in that time. Rate limits (`rpm`, `tpm`) stay per process: a minute's window is
not worth a disk round trip.

A failing file (full disk, permissions) is logged and retried at the next flush; the spend waits in memory.
An existing file that is empty or not a SQLite database is refused at start (opening it would reset every
budget); `set_aside` moves such a file away so a new store can start (`sidestep serve --reset-broken-store`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path

from sidestep.log import event
from sidestep.plugins.governance.limits import Scope

__all__ = ["SpendStore", "inspect_store", "set_aside"]

log = logging.getLogger("sidestep.governance")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    scope TEXT NOT NULL,          -- key:NAME, team:NAME, customer:NAME
    period_start REAL NOT NULL,   -- UTC seconds; 0 for a total budget
    usd REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (scope, period_start)
)
"""
_ADD = """
INSERT INTO spend (scope, period_start, usd, updated) VALUES (?, ?, ?, ?)
ON CONFLICT (scope, period_start) DO UPDATE SET usd = usd + excluded.usd, updated = excluded.updated
"""


class SpendStore:
    def __init__(
        self,
        path: str | Path,
        scopes: Sequence[Scope],
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self._scopes = [scope for scope in scopes if scope.limits.budget_usd is not None]
        self._interval = interval
        self._clock = clock
        problem = inspect_store(self.path)
        if problem is not None:
            raise sqlite3.DatabaseError(f"{problem} (sidestep serve --reset-broken-store moves it aside)")
        self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")  # workers read while one writes
        self._db.execute(_SCHEMA)
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._lock = threading.Lock()  # a flush still on its thread and the final one at shutdown

    def load(self) -> None:
        """Seed every scope with its current period's total (at start, before serving)."""
        self._settle(self._exchange([], self._starts()))

    def start(self) -> None:
        """Flush every `interval` seconds in the background (on the running loop) until `close`."""
        if self._scopes and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def close(self) -> None:
        """Stop flushing, write what is left (at shutdown), close the file."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        try:
            self.flush_now()
        finally:
            self._db.close()

    def flush_now(self) -> None:
        """One flush, on this thread."""
        deltas = self._take()
        self._settle(self._exchange(deltas, self._starts()))

    async def flush(self) -> None:
        """One flush, with the file's I/O on a worker thread."""
        deltas = self._take()
        try:
            totals = await asyncio.to_thread(self._exchange, deltas, self._starts())
        except BaseException:
            now = self._clock()
            for scope, start, usd in deltas:  # not written: it goes with the next flush
                scope.spend.restore(now, start, usd)
            raise
        self._settle(totals)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except sqlite3.Error as exc:
                if not self._failing:
                    event(log, logging.ERROR, "spend_store_failed", path=self.path, error=exc)
                self._failing = True
            else:
                if self._failing:
                    event(log, logging.WARNING, "spend_store_recovered", path=self.path)
                self._failing = False

    def _starts(self) -> set[float]:
        now = self._clock()
        return {scope.spend.current_start(now) for scope in self._scopes}

    def _take(self) -> list[tuple[Scope, float, float]]:
        now = self._clock()
        return [(scope, *scope.spend.take(now)) for scope in self._scopes]

    def _exchange(self, deltas: list[tuple[Scope, float, float]], starts: set[float]) -> dict[tuple[str, float], float]:
        """Add the deltas, read back the totals of the current periods (a worker thread runs this)."""
        db = self._db
        updated = time.time()
        marks = ",".join("?" * len(starts))
        query = f"SELECT scope, period_start, usd FROM spend WHERE period_start IN ({marks})"
        with self._lock:
            with db:  # one transaction; rolled back if a write fails
                db.execute("BEGIN IMMEDIATE")
                db.executemany(_ADD, [(scope.ident, start, usd, updated) for scope, start, usd in deltas if usd])
            return {(scope, start): usd for scope, start, usd in db.execute(query, tuple(starts))}

    def _settle(self, totals: dict[tuple[str, float], float]) -> None:
        now = self._clock()
        for scope in self._scopes:
            start = scope.spend.current_start(now)
            total = totals.get((scope.ident, start))
            if total is not None:
                scope.spend.settle(now, start, total)


def inspect_store(path: str | Path) -> str | None:
    """Why an existing file cannot serve as the spend store, or None (a missing file is created anew).
    An empty file would open as a new database — every budget back to zero, silently."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return None  # missing (created) or unreadable (connecting says why)
    if size == 0:
        return "the file is empty (0 bytes); opening it would reset every budget"
    try:
        with closing(sqlite3.connect(str(path), timeout=5.0)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        return f"not a SQLite spend store ({exc})"
    return None


def set_aside(path: str | Path, now: float) -> str | None:
    """Move an unusable store (and its WAL files) to `PATH.broken-YYYYmmddTHHMMSS` so a new one starts
    there; a usable or missing store is left alone. The new name, or None when nothing was moved."""
    if inspect_store(path) is None:
        return None
    aside = f"{path}.broken-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}"
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.replace(f"{path}{suffix}", f"{aside}{suffix}")
    return aside
