"""Counters behind governance limits: a sliding minute for rates, a calendar period for budgets.

Reading (`estimate`, `wait`, `spent`) never changes a counter, so decisions stay pure functions of a
snapshot; only the plugin's bookkeeping calls `add`. Times are wall-clock seconds (UTC) from the caller.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field

from sidestep.config.model import Limits

__all__ = ["NO_SCOPES", "MinuteWindow", "Scope", "Scopes", "Spend", "iso_utc", "period_end", "period_start"]


class MinuteWindow:
    """A sliding one-minute sum, estimated from this fixed minute and the previous one weighted by how much
    of it still overlaps the last 60 s (as Cloudflare's and Redis's rate limiters do): O(1) time and
    memory, at most a few percent off a true sliding window when traffic is steady."""

    __slots__ = ("_current", "_minute", "_previous")

    def __init__(self) -> None:
        self._minute = -1.0
        self._current = 0.0
        self._previous = 0.0

    def _counts(self, now: float) -> tuple[float, float]:
        minute = now // 60
        if minute == self._minute:
            return self._current, self._previous
        if minute == self._minute + 1:
            return 0.0, self._current
        return 0.0, 0.0

    def estimate(self, now: float) -> float:
        minute = now // 60  # inlined `_counts`: this runs for every request of a limited key
        if minute == self._minute:
            return self._previous * (1.0 - (now % 60) / 60) + self._current
        if minute == self._minute + 1:
            return self._current * (1.0 - (now % 60) / 60)
        return 0.0

    def wait(self, now: float, limit: float) -> float:
        """Seconds until the estimate drops below `limit` with nothing added meanwhile."""
        current, previous = self._counts(now)
        elapsed = now % 60
        if current > 0 and current >= limit:  # only later minutes bring it down, this one as "previous"
            return (60 - elapsed) + 60 * (1 - max(limit, 0.0) / current)
        if previous <= 0 or previous * (1 - elapsed / 60) + current < limit:
            return 0.0
        if limit <= 0:  # nothing may remain: wait for the previous minute to slide out entirely
            return 60 - elapsed
        return max(0.0, 60 * (1 - (limit - current) / previous) - elapsed)

    def add(self, now: float, amount: float) -> None:
        minute = now // 60
        if minute != self._minute:
            self._previous = self._current if minute == self._minute + 1 else 0.0
            self._current = 0.0
            self._minute = minute
        self._current += amount


def period_start(now: float, period: str) -> float:
    """Start of the budget period holding `now`: UTC midnight, Monday, the 1st; 0 for "total"."""
    if period == "total":
        return 0.0
    day = int(now // 86400) * 86400
    if period == "daily":
        return float(day)
    if period == "weekly":
        return float(day - time.gmtime(day).tm_wday * 86400)
    tm = time.gmtime(now)
    return float(calendar.timegm((tm.tm_year, tm.tm_mon, 1, 0, 0, 0)))


def period_end(now: float, period: str) -> float | None:
    """When the budget period holding `now` ends (None for "total": it never resets)."""
    if period == "total":
        return None
    start = period_start(now, period)
    if period == "daily":
        return start + 86400
    if period == "weekly":
        return start + 7 * 86400
    tm = time.gmtime(start)
    year, month = (tm.tm_year + 1, 1) if tm.tm_mon == 12 else (tm.tm_year, tm.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))


def iso_utc(seconds: float) -> str:
    """`2026-12-01T00:00:00Z`: how refusals and the key endpoint name a moment."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class Spend:
    """USD spent in the current budget period; a new period starts from zero. The period's bounds are
    kept, so the per-request check is two comparisons (calendar arithmetic only when a period turns).

    With a store (`sidestep.plugins.governance.store`), `take` hands over what was spent here since the
    last flush and `settle` takes back the period's total as every process sharing the store counted it.

    `reserved` is what the requests in flight here may still cost (their estimates, reserved when admitted
    and released when over: `Scopes.reserve`, `Scopes.release`); admission checks spent + reserved. It
    outlives a period's turn, since those requests still end."""

    __slots__ = ("_delta", "_end", "_start", "_usd", "period", "reserved")

    def __init__(self, period: str) -> None:
        self.period = period
        self.reserved = 0.0
        self._start = 0.0
        self._end = -1.0  # no period yet
        self._usd = 0.0
        self._delta = 0.0  # spent here and not yet handed to the store

    def _current(self, now: float) -> bool:
        return self._start <= now and (now < self._end or self.period == "total")

    def _turn(self, now: float) -> None:
        self._start = period_start(now, self.period)
        self._end = period_end(now, self.period) or 0.0
        self._usd = self._delta = 0.0

    def spent(self, now: float) -> float:
        if self._start <= now and (now < self._end or self.period == "total"):
            return self._usd
        return 0.0

    def add(self, now: float, usd: float) -> None:
        if not (self._start <= now and (now < self._end or self.period == "total")):  # inlined `_current`:
            self._turn(now)  # this runs for every priced answer, per budget
        self._usd += usd
        self._delta += usd

    def take(self, now: float) -> tuple[float, float]:
        """(start of the current period, USD spent here since the last take)."""
        if not self._current(now):
            self._turn(now)
        delta, self._delta = self._delta, 0.0
        return self._start, delta

    def current_start(self, now: float) -> float:
        if not self._current(now):
            self._turn(now)
        return self._start

    def restore(self, now: float, start: float, usd: float) -> None:
        """Put back a `take` the store could not write (only while its period lasts)."""
        if self._current(now) and start == self._start:
            self._delta += usd

    def settle(self, now: float, start: float, total: float) -> None:
        """The store's total for the period starting at `start`, plus what was spent here meanwhile."""
        if not self._current(now):
            self._turn(now)
        if start == self._start:
            self._usd = total + self._delta


@dataclass(slots=True, eq=False)
class Scope:
    """One key, team or customer: its limits and the counters they are checked against."""

    label: str  # "key 'alice'", "team 'research'", "customer 'acme'"
    limits: Limits
    ident: str = ""  # "key:alice", "team:research", "customer:acme": its name in a store
    requests: MinuteWindow = field(default_factory=MinuteWindow)
    tokens: MinuteWindow = field(default_factory=MinuteWindow)
    spend: Spend = field(init=False)

    def __post_init__(self) -> None:
        self.spend = Spend(self.limits.budget_period)


@dataclass(frozen=True, slots=True)
class Scopes:
    """A key's scopes (itself, its team, its customer), grouped once by the limits each has, so a request
    checks only the limits that exist."""

    all: tuple[Scope, ...] = ()
    budgets: tuple[Scope, ...] = ()
    rpm: tuple[Scope, ...] = ()
    tpm: tuple[Scope, ...] = ()

    def reserve(self, usd: float) -> None:
        """Hold a request's estimated cost against every budget while it is in flight."""
        for scope in self.budgets:
            scope.spend.reserved += usd

    def release(self, usd: float) -> None:
        """Give back what `reserve` held. Never below zero: a reload may hand a request's release to
        counters that never held it."""
        for scope in self.budgets:
            spend = scope.spend
            left = spend.reserved - usd
            spend.reserved = left if left > 0.0 else 0.0  # not `max()`, which parses keywords: 3x the cost

    @classmethod
    def of(cls, scopes: tuple[Scope, ...]) -> Scopes:
        return cls(
            all=tuple(scope for scope in scopes if scope.limits.any),
            budgets=tuple(scope for scope in scopes if scope.limits.budget_usd is not None),
            rpm=tuple(scope for scope in scopes if scope.limits.rpm is not None),
            tpm=tuple(scope for scope in scopes if scope.limits.tpm is not None),
        )


NO_SCOPES = Scopes()
