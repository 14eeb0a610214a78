"""Retry policy: how many tries, how long to wait between them, and which failures deserve another try.

Backoff is exponential with full jitter (sleep = uniform(0, min(max_backoff, base * 2**n))), and never
shorter than the upstream's `Retry-After`. Everything is a pure function of (policy, attempt, rng).
"""

from __future__ import annotations

import random

from sidestep.config.model import RetryPolicy
from sidestep.errors import UpstreamConnectionError, UpstreamError, UpstreamTimeout

__all__ = ["RetryPolicy", "backoff_delay", "should_retry"]


def should_retry(policy: RetryPolicy, error: UpstreamError, tries_so_far: int) -> bool:
    if tries_so_far >= policy.attempts:
        return False
    if error.status in policy.retry_on:
        return True
    return policy.retry_connection_errors and isinstance(error, UpstreamTimeout | UpstreamConnectionError)


def backoff_delay(policy: RetryPolicy, tries_so_far: int, rng: random.Random, retry_after: float | None) -> float:
    ceiling = min(policy.max_backoff, policy.base_backoff * (2 ** max(0, tries_so_far - 1)))
    delay = rng.uniform(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
