"""Circuit breakers per provider, key and model: closed → open → half-open → closed.

A breaker opens after `failure_threshold` consecutive failures, or when the error rate over a sliding
window reaches `error_rate` with at least `min_requests` outcomes in it. After `cooldown` seconds it lets
up to `half_open_probes` requests through; one success closes it, one failure opens it again. Time comes
from the caller (`now`), so the state machine is pure and tested without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Container

from sidestep.config.model import BreakerPolicy

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "Breaker", "BreakerPolicy", "Breakers"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class _Window:
    """Outcome counts over the last `window` seconds in fixed buckets: O(1) per record."""

    __slots__ = ("_failures", "_slot", "_span", "_stamps", "_totals")

    def __init__(self, window: float, buckets: int) -> None:
        self._span = window / buckets
        self._totals = [0] * buckets
        self._failures = [0] * buckets
        self._stamps = [-1] * buckets
        self._slot = len(self._totals)

    def record(self, now: float, failed: bool) -> None:
        tick = int(now / self._span)
        index = tick % self._slot
        if self._stamps[index] != tick:
            self._stamps[index], self._totals[index], self._failures[index] = tick, 0, 0
        self._totals[index] += 1
        self._failures[index] += failed

    def counts(self, now: float) -> tuple[int, int]:
        oldest = int(now / self._span) - self._slot + 1
        total = failures = 0
        for stamp, count, failed in zip(self._stamps, self._totals, self._failures, strict=True):
            if stamp >= oldest:
                total += count
                failures += failed
        return total, failures

    def clear(self) -> None:
        self._stamps = [-1] * self._slot


class Breaker:
    __slots__ = ("_probes", "_window", "consecutive", "name", "on_change", "opened_at", "policy", "state")

    def __init__(
        self, name: str, policy: BreakerPolicy, on_change: Callable[[str, str, str], None] | None = None
    ) -> None:
        self.name = name
        self.policy = policy
        self.state = CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self.on_change = on_change
        self._probes = 0
        self._window = _Window(policy.window, policy.buckets)

    def available(self, now: float) -> bool:
        """Would `allow` say yes? Read-only, for choosing among keys before claiming a probe slot."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            return now - self.opened_at >= self.policy.cooldown
        return self._probes < self.policy.half_open_probes

    def release(self) -> None:
        """A request let through in half-open ended without an outcome (cancelled): free its probe slot."""
        if self.state == HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def allow(self, now: float) -> bool:
        """May a request go to this target now? In half-open, taking a probe slot is part of the answer."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if now - self.opened_at < self.policy.cooldown:
                return False
            self._move(HALF_OPEN)
            self._probes = 0
        if self._probes < self.policy.half_open_probes:
            self._probes += 1
            return True
        return False

    def record_success(self, now: float) -> None:
        self.consecutive = 0
        self._window.record(now, False)
        if self.state == HALF_OPEN:
            self._window.clear()
            self._move(CLOSED)

    def record_failure(self, now: float) -> None:
        self.consecutive += 1
        self._window.record(now, True)
        if self.state == HALF_OPEN or (self.state == CLOSED and self._should_open(now)):
            self.opened_at = now
            self._move(OPEN)

    def _should_open(self, now: float) -> bool:
        if self.consecutive >= self.policy.failure_threshold:
            return True
        total, failures = self._window.counts(now)
        return total >= self.policy.min_requests and failures / total >= self.policy.error_rate

    def _move(self, state: str) -> None:
        old, self.state = self.state, state
        if self.on_change is not None and old != state:
            self.on_change(self.name, old, state)


class Breakers:
    """Breakers created on first use, one per (provider, key, model), at most `limit` of them: clients may
    name any `provider/model`. When the table is full the oldest closed breakers make room (a closed
    breaker holds only its recent error window); open and half-open ones are kept, and if nothing can be
    dropped a new name gets a breaker that is not kept. Either way `overflow` counts it."""

    def __init__(
        self,
        policy: BreakerPolicy,
        on_change: Callable[[str, str, str], None] | None = None,
        *,
        limit: int = 5_000,
    ) -> None:
        self.policy = policy
        self.on_change = on_change
        self.limit = limit
        self.overflow = 0  # breakers dropped for room, or never kept
        self._by_name: dict[tuple[str, str, str], Breaker] = {}

    def get(self, provider: str, key: str, model: str) -> Breaker:
        ident = (provider, key, model)
        breaker = self._by_name.get(ident)
        if breaker is None:
            breaker = Breaker(f"{provider}/{model} [{key}]", self.policy, self.on_change)
            if len(self._by_name) >= self.limit and not self._make_room():
                self.overflow += 1
                return breaker
            self._by_name[ident] = breaker
        return breaker

    def _make_room(self) -> bool:
        """Drop the oldest closed breakers, an eighth of the table at a time (so this runs rarely)."""
        wanted = max(1, self.limit // 8)
        doomed = []
        for ident, breaker in self._by_name.items():
            if breaker.state == CLOSED:
                doomed.append(ident)
                if len(doomed) >= wanted:
                    break
        for ident in doomed:
            del self._by_name[ident]
        self.overflow += len(doomed)
        return bool(doomed)

    def discard(self, provider: str, key: str, model: str) -> None:
        """Forget a closed breaker (a model the provider does not know: no state should outlive it)."""
        breaker = self._by_name.get((provider, key, model))
        if breaker is not None and breaker.state == CLOSED:
            del self._by_name[(provider, key, model)]

    def keep_only(self, providers: Container[str]) -> None:
        """Forget the breakers of providers no longer configured (a reload removed them)."""
        self._by_name = {ident: breaker for ident, breaker in self._by_name.items() if ident[0] in providers}

    def states(self) -> dict[tuple[str, str, str], str]:
        """(provider, key, model) → state, for every breaker created so far."""
        return {ident: breaker.state for ident, breaker in self._by_name.items()}
