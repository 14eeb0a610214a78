"""Governance decisions as values: may this caller send this request now?

`decide` reads the key and its scopes' counters and changes nothing; the plugin acts on the answer.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from sidestep.config.model import VirtualKey
from sidestep.plugins.governance.limits import Scope, Scopes, iso_utc, period_end

__all__ = ["ALLOW", "Decision", "decide", "model_allowed"]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    code: str = ""  # invalid_api_key, model_not_allowed, rate_limit_exceeded, tokens_exceeded, insufficient_quota
    reason: str = ""
    retry_after: float | None = None  # rate limits: when to come back; budgets: None (retrying won't help)


ALLOW = Decision(True)
_NO_KEY = Decision(
    False,
    "invalid_api_key",
    "This gateway requires a virtual key: send it as `Authorization: Bearer <key>`, `x-api-key` or `x-goog-api-key`.",
)
_UNKNOWN_KEY = Decision(False, "invalid_api_key", "The virtual key is not known to this gateway.")


def model_allowed(globs: tuple[str, ...] | None, model: str) -> bool:
    if globs is None or model in globs:
        return True
    return any(fnmatch.fnmatchcase(model, glob) for glob in globs)


def decide(key: VirtualKey | None, presented: bool, models: Sequence[str], scopes: Scopes, now: float) -> Decision:
    """The verdict for a request naming `models` (its route and any fallbacks), checked in this order:
    the key, its model allow-list, budgets (no retry can help), then rate limits (come back later)."""
    if key is None:
        return _UNKNOWN_KEY if presented else _NO_KEY
    if not key.enabled:
        return Decision(False, "invalid_api_key", f"Key '{key.name}' is disabled.")
    if key.expires is not None and now >= key.expires:
        return Decision(False, "invalid_api_key", f"Key '{key.name}' expired at {iso_utc(key.expires)}.")
    if key.models is not None:
        for model in models:
            if not model_allowed(key.models, model):
                allowed = ", ".join(key.models)
                reason = f"Key '{key.name}' may not use '{model}' (allowed: {allowed})."
                return Decision(False, "model_not_allowed", reason)
    for scope in scopes.budgets:  # spent in this period, and held by requests in flight
        spend = scope.spend
        if spend.spent(now) + spend.reserved >= scope.limits.budget_usd:  # type: ignore[operator]  # grouped: set
            return _spent(scope, now)
    for scope in scopes.rpm:
        if scope.requests.estimate(now) + 1 > scope.limits.rpm:  # type: ignore[operator]
            return _too_many(scope, now)
    for scope in scopes.tpm:
        if scope.tokens.estimate(now) >= scope.limits.tpm:  # type: ignore[operator]
            return _too_many_tokens(scope, now)
    return ALLOW


def _spent(scope: Scope, now: float) -> Decision:
    limits = scope.limits
    period = limits.budget_period
    end = period_end(now, period)
    resets = f"; it resets at {iso_utc(end)}" if end is not None else ""
    which = "total" if period == "total" else period
    spent, reserved = scope.spend.spent(now), scope.spend.reserved
    held = f", ${reserved:.4f} more held by requests in flight" if reserved else ""
    reason = f"The {which} budget of {scope.label} (${limits.budget_usd:.2f}) is spent (${spent:.4f}{held}){resets}."
    return Decision(False, "insufficient_quota", reason)


def _too_many(scope: Scope, now: float) -> Decision:
    rpm = scope.limits.rpm or 0
    reason = f"{_cap(scope.label)} is over its limit of {rpm} requests per minute."
    return Decision(False, "rate_limit_exceeded", reason, scope.requests.wait(now, rpm - 1))


def _too_many_tokens(scope: Scope, now: float) -> Decision:
    tpm = scope.limits.tpm or 0
    reason = f"{_cap(scope.label)} is over its limit of {tpm} tokens per minute."
    return Decision(False, "tokens_exceeded", reason, scope.tokens.wait(now, tpm))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
