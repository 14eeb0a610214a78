"""Drill scenarios: which providers misbehave, how, and when.

A scenario is a list of `Fault`s. Each names the providers it hits with one selector — `name` (a glob
over provider names), `type` (the provider's adapter type) or `role: primary` (every provider that is
the first choice of some route) — and carries a simulator rule: a fault spec and a time window in
seconds from the start of the drill. Built-in scenarios are written relative to the drill's duration
so a short CI drill and a long one play the same story.

```yaml
name: eu-outage
faults:
  - {type: openai, start: 2, end: 8, fault: "status=503"}
  - {name: "groq*", fault: "status=429,retry_after=1,rate=0.5"}
```
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sidestep.config.model import Config, FallbackNode, LoadBalanceNode, ProviderConfig, RouteNode, TargetNode
from sidestep.sim.faults import FaultSpec, Rule, Scenario, parse_fault

__all__ = [
    "BUILTIN",
    "DrillScenario",
    "Fault",
    "load_scenario",
    "primary_providers",
    "route_providers",
    "route_targets",
]

_SELECTORS = ("name", "type", "role")


@dataclass(frozen=True, slots=True)
class Fault:
    selector: str  # "name", "type" or "role"
    pattern: str
    rule: Rule

    def selects(self, provider: ProviderConfig, primaries: frozenset[str]) -> bool:
        if self.selector == "name":
            return fnmatch.fnmatchcase(provider.name, self.pattern)
        if self.selector == "type":
            return provider.type == self.pattern
        return provider.name in primaries  # role: primary

    def describe(self) -> str:
        end = "end" if self.rule.end is None else f"{self.rule.end:g}s"
        return f"{self.selector}={self.pattern}: {self.rule.fault.describe()} from {self.rule.start:g}s to {end}"


@dataclass(frozen=True, slots=True)
class DrillScenario:
    name: str
    description: str
    faults: tuple[Fault, ...]

    def for_provider(self, provider: ProviderConfig, primaries: frozenset[str]) -> Scenario:
        return Scenario([f.rule for f in self.faults if f.selects(provider, primaries)])


def _openai_outage(duration: float) -> DrillScenario:
    rule = Rule(parse_fault("status=503"), 0.2 * duration, 0.7 * duration)
    return DrillScenario(
        "openai-outage",
        "every provider of type openai answers 503 from 20% to 70% of the drill",
        (Fault("type", "openai", rule),),
    )


def _anthropic_429_storm(duration: float) -> DrillScenario:
    rule = Rule(parse_fault("status=429,retry_after=1,rate=0.9"), 0.1 * duration, 0.8 * duration)
    return DrillScenario(
        "anthropic-429-storm",
        "providers of type anthropic rate-limit 90% of requests (Retry-After: 1) from 10% to 80% of the drill",
        (Fault("type", "anthropic", rule),),
    )


def _slow_ttft(duration: float) -> DrillScenario:
    rule = Rule(parse_fault("ttft=3,latency=3"), 0.0, None)
    return DrillScenario(
        "slow-ttft",
        "every route's primary provider takes 3 s to its first token (3 s to headers for JSON answers)",
        (Fault("role", "primary", rule),),
    )


def _flapping(duration: float) -> DrillScenario:
    window = duration / 8
    rules = [Rule(parse_fault("status=503"), start * window, (start + 1) * window) for start in (1, 3, 5)]
    return DrillScenario(
        "flapping",
        "every route's primary provider alternates between healthy and 503 every eighth of the drill",
        tuple(Fault("role", "primary", rule) for rule in rules),
    )


BUILTIN: dict[str, Callable[[float], DrillScenario]] = {
    "openai-outage": _openai_outage,
    "anthropic-429-storm": _anthropic_429_storm,
    "slow-ttft": _slow_ttft,
    "flapping": _flapping,
}


def load_scenario(name_or_path: str, duration: float) -> DrillScenario:
    """A built-in scenario by name, or a YAML scenario file; errors name the file and entry."""
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path](duration)
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(BUILTIN)
        raise ValueError(f"unknown scenario '{name_or_path}': not a built-in ({known}) and not a file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {exc}") from exc
    return scenario_from_data(data, str(path))


def scenario_from_data(data: Any, source: str) -> DrillScenario:
    if not isinstance(data, dict) or not isinstance(data.get("faults"), list):
        raise ValueError(f"{source}: expected a mapping with a `faults:` list")
    unknown = set(data) - {"name", "description", "faults"}
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
    faults = tuple(_fault(item, f"{source}: faults[{i}]") for i, item in enumerate(data["faults"]))
    return DrillScenario(str(data.get("name", Path(source).stem)), str(data.get("description", "")), faults)


def _fault(item: Any, where: str) -> Fault:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected a mapping with one of {', '.join(_SELECTORS)} and `fault:`")
    chosen = [key for key in _SELECTORS if key in item]
    if len(chosen) != 1:
        raise ValueError(f"{where}: name exactly one selector of {', '.join(_SELECTORS)}")
    selector = chosen[0]
    pattern = item[selector]
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{where}.{selector}: expected a string")
    if selector == "role" and pattern != "primary":
        raise ValueError(f"{where}.role: the only role is 'primary'")
    rule_data = {k: v for k, v in item.items() if k != selector}
    try:
        rule = Scenario.from_data([rule_data], where).rules[0]
    except ValueError as exc:  # the simulator names the rule `rules[0]`; here it is the fault entry itself
        raise ValueError(str(exc).replace(f"{where}: rules[0]", where)) from None
    return Fault(selector, pattern, rule)


def _first_targets(node: RouteNode) -> Iterable[TargetNode]:
    if isinstance(node, TargetNode):
        yield node
    elif isinstance(node, FallbackNode):
        yield from _first_targets(node.children[0])
    elif isinstance(node, LoadBalanceNode):  # any member may be picked first
        for child in node.children:
            yield from _first_targets(child)


def _all_targets(node: RouteNode) -> Iterable[TargetNode]:
    if isinstance(node, TargetNode):
        yield node
    else:
        for child in node.children:
            yield from _all_targets(child)


def primary_providers(config: Config) -> frozenset[str]:
    return frozenset(t.provider for node in config.routes.values() for t in _first_targets(node))


def route_providers(node: RouteNode) -> frozenset[str]:
    return frozenset(t.provider for t in _all_targets(node))


def route_targets(node: RouteNode) -> list[TargetNode]:
    return list(_all_targets(node))


def is_down(fault: FaultSpec) -> bool:
    """A provider under this fault cannot be counted on to answer (any failing spec, even at a rate < 1)."""
    return not fault.is_healthy
