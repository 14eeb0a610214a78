"""Key cooldowns: a key that was rate-limited (429) rests until its Retry-After (or a default); a key that
was rejected (401/403) rests for a long time; no key rests longer than `longest`, whatever an upstream's
Retry-After says. Keys are identified by their label, never by the secret."""

from __future__ import annotations

__all__ = ["Cooldowns"]


class Cooldowns:
    def __init__(self, *, default_rate_limit: float = 10.0, rejected: float = 3600.0, longest: float = 3600.0) -> None:
        self.default_rate_limit = default_rate_limit
        self.rejected = rejected
        self.longest = longest
        self._until: dict[str, float] = {}

    def configure(self, *, default_rate_limit: float, rejected: float, longest: float, now: float) -> None:
        """New settings (a reload): rests already running end no later than the new `longest` allows."""
        self.default_rate_limit, self.rejected, self.longest = default_rate_limit, rejected, longest
        self._until = {key: min(until, now + longest) for key, until in self._until.items() if until > now}

    def cool(self, key: str, now: float, seconds: float) -> None:
        self._until[key] = max(self._until.get(key, 0.0), now + min(seconds, self.longest))

    def on_failure(self, key: str, status: int | None, retry_after: float | None, now: float) -> float | None:
        """Record a failure; return the cooldown applied (None when the failure does not concern the key)."""
        if status == 429:
            seconds = retry_after if retry_after is not None else self.default_rate_limit
        elif status in (401, 403):
            seconds = self.rejected
        else:
            return None
        seconds = min(seconds, self.longest)
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
