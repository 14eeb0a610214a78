"""What a request cost, from its token usage and `governance.pricing` (USD per million tokens)."""

from __future__ import annotations

from collections.abc import Mapping

from sidestep.config.model import Price
from sidestep.plugins.base import TokenUsage

__all__ = ["Pricing"]


class Pricing:
    """Prices by "provider/model", else by bare model name; an unpriced model costs 0 (and says so)."""

    __slots__ = ("_found", "_prices")

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = dict(prices)
        self._found: dict[tuple[str, str], Price | None] = {}  # (provider, model) → its price, as looked up

    def __bool__(self) -> bool:
        return bool(self._prices)

    def price(self, provider: str, model: str) -> Price | None:
        return self._prices.get(f"{provider}/{model}") or self._prices.get(model)

    def cost(self, provider: str, model: str, usage: TokenUsage) -> float | None:
        """USD for `usage` at that target, or None when no price is configured for it."""
        target = (provider, model)
        price = self._found.get(target)
        if price is None:
            if target in self._found:
                return None
            if len(self._found) >= 4096:  # clients may name any provider/model: stay bounded
                self._found.clear()
            price = self._found[target] = self.price(provider, model)
            if price is None:
                return None
        return (usage.input * price.input + usage.output * price.output) / 1_000_000
