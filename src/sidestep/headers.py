"""HTTP header pairs as both sides of the gateway receive them (raw bytes from httptools), made into the
mapping handlers and adapters read — only when something reads them."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["header_dict"]


def header_dict(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Raw header pairs → lower-cased names, repeated headers joined with ", "."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = headers.get(key)
        headers[key] = text if previous is None else f"{previous}, {text}"
    return headers
