"""What a request cost, from its token usage and `governance.pricing` (USD per million tokens)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from sidestep.config.model import Price, RouteNode, TargetNode
from sidestep.outcome import TokenUsage, units_of

__all__ = ["Pricing"]

_UNSEEN = Price(input=-1.0, output=-1.0)  # a ceiling not computed yet (None is a valid answer)


class Pricing:
    """Prices by "provider/model", else by bare model name; an unpriced model costs 0 (and says so)."""

    __slots__ = ("_ceilings", "_found", "_prices", "_routes")

    def __init__(self, prices: Mapping[str, Price], routes: Mapping[str, RouteNode] | None = None) -> None:
        self._prices = dict(prices)
        self._found: dict[tuple[str, str], Price | None] = {}  # (provider, model) → its price, as looked up
        self._routes = routes or {}
        self._ceilings: dict[tuple[str, ...], Price | None] = {}  # requested names → the dearest price among them

    def __bool__(self) -> bool:
        return bool(self._prices)

    def price(self, provider: str, model: str) -> Price | None:
        return self._prices.get(f"{provider}/{model}") or self._prices.get(model)

    def ceiling(self, names: Sequence[str]) -> Price | None:
        """The highest input and output prices among every target `names` may be served by (routes
        expanded, fallbacks included): what a request in flight can cost at most per token. None when
        none of them has a price."""
        key = tuple(names)
        found = self._ceilings.get(key, _UNSEEN)
        if found is not _UNSEEN:  # one lookup: this runs for every request against a budget
            return found
        prices = [price for name in names for price in self._prices_of(name) if price is not None]
        ceiling = None
        if prices:
            ceiling = Price(input=max(p.input for p in prices), output=max(p.output for p in prices))
        if len(self._ceilings) >= 4096:  # per-request fallbacks make the set open-ended: stay bounded
            self._ceilings.clear()
        self._ceilings[key] = ceiling
        return ceiling

    def _prices_of(self, name: str) -> Iterator[Price | None]:
        route = self._routes.get(name)
        if route is not None:
            for target in _targets(route):
                yield self.price(target.provider, target.model)
            return
        provider, sep, model = name.partition("/")  # as the planner reads `provider/model`
        yield self.price(provider, model) if sep else self.price("", name)

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
        tokens = (usage.input * price.input + usage.output * price.output) / 1_000_000
        if price.per_unit:
            return tokens + units_of(usage) * price.per_unit  # images, search units, audio seconds
        return tokens


def _targets(node: RouteNode) -> Iterator[TargetNode]:
    if isinstance(node, TargetNode):
        yield node
        return
    for child in node.children:
        yield from _targets(child)
