"""Pure routing decisions: resolve a requested model to a route tree and expand the tree into an ordered
list of targets to try. No I/O; randomness comes from the caller's `random.Random`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sidestep.config.model import (
    NO_POLICY,
    LoadBalanceNode,
    NodePolicy,
    ProviderConfig,
    RouteNode,
    TargetNode,
)
from sidestep.errors import NotFound
from sidestep.routing.strategies import TargetStats, order_children

__all__ = [
    "STATS_STRATEGIES",
    "Planned",
    "Planner",
    "configured_targets",
    "expand",
    "reads_stats",
    "resolve",
    "resolve_all",
    "weighted_index",
]


@dataclass(slots=True)
class Planned:
    """One target to try, with the resilience policy it inherited from its route nodes."""

    target: TargetNode
    policy: NodePolicy


def expand(
    node: RouteNode, rng: random.Random, stats: TargetStats | None = None, inherited: NodePolicy = NO_POLICY
) -> list[Planned]:
    policy = node.policy.under(inherited) if node.policy is not NO_POLICY else inherited
    if isinstance(node, TargetNode):
        return [Planned(node, policy)]
    children: Sequence[RouteNode] = node.children
    if isinstance(node, LoadBalanceNode):
        weights = [c.weight for c in children]
        labels = [c.label if isinstance(c, TargetNode) else f"group:{id(c)}" for c in children]
        children = order_children(node.strategy, children, weights, labels, stats or TargetStats(), rng, id(node))
    out: list[Planned] = []
    for child in children:
        out.extend(expand(child, rng, stats, policy))
    return out


def resolve(name: str, routes: Mapping[str, RouteNode], providers: Mapping[str, ProviderConfig]) -> RouteNode:
    """A model name as a client wrote it → a route node.

    Order: a configured route; `provider/model` naming a configured provider; a bare model listed under
    exactly one provider's `models`; a bare model when exactly one provider is configured.
    """
    route = routes.get(name)
    if route is not None:
        return route
    provider, sep, model = name.partition("/")
    if sep and provider in providers and model:
        return TargetNode(provider, model)
    owners = [p for p in providers.values() if name in p.models]
    if len(owners) == 1:
        return TargetNode(owners[0].name, name)
    if not owners and len(providers) == 1 and "/" not in name:
        return TargetNode(next(iter(providers)), name)
    raise NotFound(_not_found_message(name, routes, providers), param="model")


def resolve_all(
    names: Iterable[str],
    routes: Mapping[str, RouteNode],
    providers: Mapping[str, ProviderConfig],
    rng: random.Random,
    stats: TargetStats | None = None,
) -> list[Planned]:
    """Every name resolved and expanded, in order, without repeating a target."""
    seen: set[tuple[str, str]] = set()
    out: list[Planned] = []
    for name in names:
        for planned in expand(resolve(name, routes, providers), rng, stats):
            ident = (planned.target.provider, planned.target.model)
            if ident not in seen:
                seen.add(ident)
                out.append(planned)
    return out


class Planner:
    """`resolve_all` for one configuration, remembering plans that cannot change: a plan whose route trees
    hold no load-balanced group (only fallback lists and targets) is the same for every request, so it is
    built once per distinct list of names instead of on every request. Plans are shared: never mutate one."""

    _LIMIT = 4096  # distinct name lists remembered (per-request fallbacks make the set open-ended)

    def __init__(
        self,
        routes: Mapping[str, RouteNode],
        providers: Mapping[str, ProviderConfig],
        rng: random.Random,
        stats: TargetStats | None = None,
    ) -> None:
        self.routes = routes
        self.providers = providers
        self.rng = rng
        self.stats = stats
        self._fixed: dict[tuple[str, ...], Sequence[Planned]] = {}
        self._fixed_routes = {name: _fixed(node) for name, node in routes.items()}

    def plan(self, names: Sequence[str]) -> Sequence[Planned]:
        key = tuple(names)
        plan = self._fixed.get(key)
        if plan is not None:
            return plan
        plan = resolve_all(names, self.routes, self.providers, self.rng, self.stats)
        if all(self._fixed_routes.get(name, True) for name in names):  # a name that is no route is one target
            if len(self._fixed) >= self._LIMIT:
                self._fixed.clear()
            self._fixed[key] = plan = tuple(plan)
        return plan


STATS_STRATEGIES = frozenset({"least_outstanding", "lowest_latency"})


def reads_stats(routes: Mapping[str, RouteNode]) -> bool:
    """Whether any route orders targets by live statistics (in-flight counts, latency): if none does,
    the executor need not keep them."""

    def reads(node: RouteNode) -> bool:
        if isinstance(node, TargetNode):
            return False
        if isinstance(node, LoadBalanceNode) and node.strategy in STATS_STRATEGIES:
            return True
        return any(reads(child) for child in node.children)

    return any(reads(node) for node in routes.values())


def configured_targets(routes: Mapping[str, RouteNode], providers: Mapping[str, ProviderConfig]) -> frozenset[str]:
    """Every `provider/model` label the config names: route targets and the models providers list."""
    labels = {f"{provider.name}/{model}" for provider in providers.values() for model in provider.models}
    pending: list[RouteNode] = list(routes.values())
    while pending:
        node = pending.pop()
        if isinstance(node, TargetNode):
            labels.add(node.label)
        else:
            pending.extend(node.children)
    return frozenset(labels)


def _fixed(node: RouteNode) -> bool:
    if isinstance(node, TargetNode):
        return True
    return not isinstance(node, LoadBalanceNode) and all(_fixed(child) for child in node.children)


def weighted_index(weights: Sequence[float], rng: random.Random) -> int:
    """A position drawn in proportion to its weight (a key among a target's usable keys): what
    rng.choices(weights=…) picks for the same draw, without its per-call list building."""
    point = rng.random() * sum(weights)
    for position, weight in enumerate(weights):
        point -= weight
        if point < 0:
            return position
    return len(weights) - 1


def _not_found_message(name: str, routes: Mapping[str, RouteNode], providers: Mapping[str, ProviderConfig]) -> str:
    route_list = ", ".join(sorted(routes)) or "none"
    provider_list = ", ".join(sorted(providers)) or "none"
    return (
        f"The model '{name}' does not exist on this gateway. Use a route ({route_list}) "
        f"or write provider/model with a configured provider ({provider_list})."
    )
