"""The seam routing awaits: what a provider adapter is to the executor.

Adapters (`sidestep.providers`) implement it; routing names only this shape and never imports them, so
providers (and the formats they speak) stay above routing in the layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from sidestep.config.model import KeyConfig, ProviderConfig
from sidestep.core.format import Format, Wire
from sidestep.errors import UpstreamError
from sidestep.transport.types import UpstreamRequest

__all__ = ["Provider", "speaks"]

W = TypeVar("W", bound=Wire)


class Provider(Protocol):
    """One configured upstream account speaking one wire API."""

    name: str
    config: ProviderConfig

    @property
    def format(self) -> Format:
        """The wire format it speaks: a request in any other client format is translated to it."""
        ...

    def supports(self, operation: str) -> bool: ...

    def build(self, operation: str, model: str, body: dict[str, Any], key: KeyConfig, source: Any) -> UpstreamRequest:
        """The upstream request for `body`, written by the client in `source` (the client's format as it converses,
        a `formats.base.Converses`, which routing hands on without knowing: the formats sit above it; None for a
        relayed-only API, whose body goes upstream as it came, only to adapters that `supports` it)."""
        ...

    def inspect(self, operation: str, body: bytes) -> Any:
        """Validate a successful non-stream body (raise UpstreamError if malformed); return its usage."""
        ...

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError: ...

    # Optional: `formats: Mapping[str, Wire]` — operations the adapter serves in a format other than `format`
    # (OpenAI-compatible providers speak the legacy completions, and OpenAI's rows the Responses API, in their
    # own formats); what such an attempt serves carries that format, so a client speaking it gets the bytes as
    # they are (a relayed-only API's format is one: a `Wire`, never translated). `speaks` is the one rule that
    # picks it.
    # Optional: `async def authorize(self, key: KeyConfig) -> None` — adapters whose credentials expire
    # (OAuth tokens for Vertex AI, Entra ID for Azure) refresh them here; the executor awaits it before
    # `build` and treats an `UpstreamError` from it as that attempt's failure. Keep it cheap when fresh.


def speaks(provider: Provider, formats: Mapping[str, W] | None, operation: str, model: str) -> W | Format:
    """The format an attempt at `model` serves `operation` in: the adapter's own format for the operation
    (`formats`), unless the model is configured as lacking it (`lacks: {"gpt-4o*": [responses]}`), then the
    adapter's `format` (the request translated). The adapter builds by it and the executor labels by it."""
    own = formats.get(operation) if formats is not None else None
    if own is None or operation in provider.config.lacks_for(model):
        return provider.format
    return own
