"""What a drill observed, and its verdict: which failures happened while a healthy target existed."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from sidestep.drill.scenarios import DrillScenario, is_down
from sidestep.sim.faults import Scenario

__all__ = ["DrillReport", "Outcome", "RouteSummary", "healthy_during"]


@dataclass(slots=True)
class Outcome:
    number: int
    route: str
    stream: bool
    start: float  # seconds since the drill started
    end: float
    status: int
    provider: str | None
    attempts: int
    error: str | None = None  # set when the client did not get a complete answer

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def millis(self) -> float:
        return (self.end - self.start) * 1000


@dataclass(slots=True)
class RouteSummary:
    route: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return sum(o.ok for o in self.outcomes) / len(self.outcomes) if self.outcomes else 1.0

    @property
    def served_by(self) -> Counter[str]:
        return Counter(o.provider for o in self.outcomes if o.ok and o.provider)

    def attempts(self) -> tuple[float, int]:
        counts = [o.attempts for o in self.outcomes] or [0]
        return statistics.fmean(counts), max(counts)

    def added_latency(self, baseline_ms: float) -> tuple[float, float, float]:
        """p50, p95, p99 of (latency - healthy baseline p50), in ms, over successful requests."""
        values = sorted(max(0.0, o.millis - baseline_ms) for o in self.outcomes if o.ok)
        return _pct(values, 0.50), _pct(values, 0.95), _pct(values, 0.99)


@dataclass(slots=True)
class DrillReport:
    scenario: DrillScenario
    duration: float
    baseline_ms: float
    routes: dict[str, RouteSummary]
    untouched: bool  # the scenario selected no provider of this config
    lost: list[tuple[Outcome, list[str]]] = field(default_factory=list)  # failed while these were healthy

    @property
    def passed(self) -> bool:
        return not self.lost

    @property
    def total(self) -> int:
        return sum(len(r.outcomes) for r in self.routes.values())


def healthy_during(scenario: Scenario, start: float, end: float) -> bool:
    """True when no failing rule of the provider's scenario overlaps the request's lifetime."""
    for rule in scenario.rules:
        if not is_down(rule.fault):
            continue
        if rule.start < end and (rule.end is None or rule.end > start):
            return False
    return True


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    index = min(len(values) - 1, max(0, round(q * len(values)) - 1))
    return values[index]
