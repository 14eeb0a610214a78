"""Breaker, retry and cooldown state machines: examples for each boundary, properties for the rest."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sidestep.errors import UpstreamError, UpstreamTimeout
from sidestep.routing.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerPolicy
from sidestep.routing.cooldown import Cooldowns
from sidestep.routing.retry import RetryPolicy, backoff_delay, should_retry

POLICY = BreakerPolicy(failure_threshold=3, error_rate=0.5, min_requests=10, window=10.0, cooldown=5.0)


def test_breaker_opens_after_consecutive_failures_and_rejects_until_cooldown() -> None:
    changes: list[tuple[str, str]] = []
    breaker = Breaker("p/m", POLICY, lambda _name, old, new: changes.append((old, new)))
    for t in range(3):
        assert breaker.allow(float(t))
        breaker.record_failure(float(t))
    assert breaker.state == OPEN
    assert not breaker.allow(6.9)  # opened at t=2, cooldown 5
    assert breaker.allow(7.0)  # half-open probe
    assert breaker.state == HALF_OPEN
    assert not breaker.allow(7.0)  # only one probe at a time
    breaker.record_success(7.1)
    assert breaker.state == CLOSED
    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_half_open_probe_failure_reopens_with_a_fresh_cooldown() -> None:
    breaker = Breaker("p/m", POLICY)
    for t in range(3):
        breaker.record_failure(float(t))
    assert breaker.allow(10.0)
    breaker.record_failure(10.0)
    assert breaker.state == OPEN
    assert not breaker.allow(14.9)
    assert breaker.allow(15.0)


def test_error_rate_over_the_window_opens_without_consecutive_failures() -> None:
    breaker = Breaker("p/m", POLICY)
    now = 0.0
    for i in range(10):  # alternate: never 3 in a row, but 50% errors over 10 requests
        now += 0.1
        if i % 2:
            breaker.record_failure(now)
        else:
            breaker.record_success(now)
    assert breaker.state == OPEN


def test_old_failures_leave_the_window() -> None:
    breaker = Breaker("p/m", BreakerPolicy(failure_threshold=100, min_requests=4, error_rate=0.5, window=10.0))
    breaker.record_failure(0.0)
    breaker.record_failure(0.5)
    for t in (20.0, 20.1, 20.2, 20.3):  # the early failures are 20 s old: outside the 10 s window
        breaker.record_success(t)
    assert breaker.state == CLOSED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(min_value=0.0, max_value=3.0)), max_size=60))
def test_breaker_invariants_hold_for_any_outcome_sequence(events: list[tuple[bool, float]]) -> None:
    breaker = Breaker("p/m", POLICY)
    now = 0.0
    for ok, gap in events:
        now += gap
        state_before = breaker.state
        allowed = breaker.allow(now)
        if state_before == OPEN and now - breaker.opened_at < POLICY.cooldown:
            assert not allowed  # open and cooling down: never lets a request through
        if not allowed:
            continue
        if ok:
            breaker.record_success(now)
        else:
            breaker.record_failure(now)
        if breaker.state == OPEN:
            assert breaker.opened_at == now
        if ok and state_before != OPEN:
            assert breaker.state in (CLOSED, HALF_OPEN) or state_before == HALF_OPEN
        assert breaker.consecutive == (0 if ok else breaker.consecutive)


def test_retry_decision_follows_policy() -> None:
    policy = RetryPolicy(attempts=3)
    assert should_retry(policy, UpstreamError("x", status=503), 1)
    assert should_retry(policy, UpstreamTimeout("t"), 2)
    assert not should_retry(policy, UpstreamError("x", status=503), 3)
    assert not should_retry(policy, UpstreamError("x", status=400, retryable=False), 1)
    assert not should_retry(RetryPolicy(attempts=3, retry_on=frozenset({429})), UpstreamError("x", status=500), 1)


@given(st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=2**32), st.none() | st.floats(0, 60))
def test_backoff_is_bounded_and_honours_retry_after(tries: int, seed: int, retry_after: float | None) -> None:
    policy = RetryPolicy(attempts=50, base_backoff=0.1, max_backoff=2.0)
    delay = backoff_delay(policy, tries, random.Random(seed), retry_after)
    ceiling = min(2.0, 0.1 * 2 ** (tries - 1))
    if retry_after is None:
        assert 0.0 <= delay <= ceiling
    else:
        assert retry_after <= delay <= max(ceiling, retry_after)


def test_cooldowns_rest_rate_limited_and_rejected_keys() -> None:
    cool = Cooldowns(default_rate_limit=10.0, rejected=100.0)
    assert cool.on_failure("k1", 429, 2.0, now=0.0) == 2.0
    assert cool.on_failure("k2", 429, None, now=0.0) == 10.0
    assert cool.on_failure("k3", 401, None, now=0.0) == 100.0
    assert cool.on_failure("k4", 503, None, now=0.0) is None
    assert not cool.is_cool("k1", 1.9)
    assert cool.is_cool("k1", 2.0)
    assert [key for key in ("k1", "k2", "k3") if not cool.is_cool(key, 5.0)] == ["k2", "k3"]
    assert cool.is_cool("k4", 0.0)
