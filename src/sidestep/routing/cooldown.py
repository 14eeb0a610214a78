"""Key cooldowns: a key that was rate-limited (429) rests until its Retry-After (or a default); a key that
was rejected (401/403) rests for a long time. Keys are identified by their label, never by the secret."""

from __future__ import annotations

__all__ = ["Cooldowns"]


class Cooldowns:
    def __init__(self, *, default_rate_limit: float = 10.0, rejected: float = 3600.0) -> None:
        self.default_rate_limit = default_rate_limit
        self.rejected = rejected
        self._until: dict[str, float] = {}

    def cool(self, key: str, now: float, seconds: float) -> None:
        self._until[key] = max(self._until.get(key, 0.0), now + seconds)

    def on_failure(self, key: str, status: int | None, retry_after: float | None, now: float) -> float | None:
        """Record a failure; return the cooldown applied (None when the failure does not concern the key)."""
        if status == 429:
            seconds = retry_after if retry_after is not None else self.default_rate_limit
        elif status in (401, 403):
            seconds = self.rejected
        else:
            return None
        self.cool(key, now, seconds)
        return seconds

    def is_cool(self, key: str, now: float) -> bool:
        """True when the key may be used (not resting)."""
        until = self._until.get(key)
        if until is None:
            return True
        if now >= until:
            del self._until[key]
            return True
        return False
