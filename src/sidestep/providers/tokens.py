"""Short-lived bearer tokens (OAuth access tokens for Vertex AI, Entra ID for Azure): fetched on first use,
reused until shortly before they expire, refreshed once however many requests are waiting (single flight).
A failed fetch fails the attempts that waited for it; the next request tries again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sidestep.errors import UpstreamError

__all__ = ["TokenCache"]

Fetch = Callable[[], Awaitable[tuple[str, float]]]  # → (token, expiry as epoch seconds)


class TokenCache:
    def __init__(
        self, fetch: Fetch, label: str, *, margin: float = 300.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._fetch = fetch
        self._label = label
        self._margin = margin
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._pending: asyncio.Future[str] | None = None

    @property
    def token(self) -> str | None:
        return self._token

    async def get(self) -> str:
        if self._token is not None and self._expires - self._clock() > self._margin:
            return self._token
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._pending)

    async def _refresh(self) -> str:
        try:
            token, expires = await self._fetch()
        except UpstreamError:
            raise
        except Exception as exc:  # a credentials library's own error: one translation, here
            raise UpstreamError(f"{self._label}: could not get an access token: {exc}", status=502) from exc
        finally:
            self._pending = None
        self._token, self._expires = token, expires
        return token
