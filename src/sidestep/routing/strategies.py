"""Load-balancing strategies for `loadbalance` nodes, and the live per-target stats they read.

A strategy orders a group's children for one request; the executor then tries them in that order, so
every strategy also defines the group's internal fallback. Targets whose breaker is open or whose keys
all rest are moved to the end by the executor, whatever the strategy said.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["STRATEGIES", "TargetStats", "order_children", "weighted_order"]

T = TypeVar("T")
STRATEGIES = ("weighted", "round_robin", "least_outstanding", "lowest_latency")


@dataclass(slots=True)
class _Live:
    outstanding: int = 0
    ewma_ms: float | None = None


class TargetStats:
    """In-flight counts and an EWMA of time-to-first-token per target label; O(1) per update. At most
    `limit` labels (clients may name any `provider/model`): when full, the oldest labels with nothing in
    flight make room, an eighth of the table at a time; `overflow` counts what was dropped or not kept."""

    def __init__(self, alpha: float = 0.2, *, limit: int = 5_000) -> None:
        self.alpha = alpha
        self.limit = limit
        self.overflow = 0
        self._live: dict[str, _Live] = {}
        self._turns: dict[int, int] = {}

    @property
    def size(self) -> int:
        return len(self._live)

    def _get(self, label: str) -> _Live:
        live = self._live.get(label)
        if live is None:
            live = _Live()
            if len(self._live) >= self.limit and not self._make_room():
                self.overflow += 1
                return live
            self._live[label] = live
        return live

    def _make_room(self) -> bool:
        wanted = max(1, self.limit // 8)
        idle = []
        for label, live in self._live.items():
            if live.outstanding == 0:
                idle.append(label)
                if len(idle) >= wanted:
                    break
        for label in idle:
            del self._live[label]
        self.overflow += len(idle)
        return bool(idle)

    def started(self, label: str) -> None:
        self._get(label).outstanding += 1

    def finished(self, label: str, ttft_ms: float | None = None) -> None:
        live = self._get(label)
        live.outstanding = max(0, live.outstanding - 1)
        if ttft_ms is not None:
            self.observe(label, ttft_ms)

    def observe(self, label: str, ttft_ms: float) -> None:
        live = self._get(label)
        live.ewma_ms = ttft_ms if live.ewma_ms is None else live.ewma_ms + self.alpha * (ttft_ms - live.ewma_ms)

    def outstanding(self, label: str) -> int:
        live = self._live.get(label)
        return live.outstanding if live else 0

    def latency(self, label: str) -> float | None:
        live = self._live.get(label)
        return live.ewma_ms if live else None

    def next_turn(self, group: int, size: int) -> int:
        turn = self._turns.get(group, 0)
        self._turns[group] = (turn + 1) % max(1, size)
        return turn


def weighted_order(items: Sequence[T], weights: Sequence[float], rng: random.Random) -> list[T]:
    """A weighted random permutation (Efraimidis-Spirakis): heavier items tend to come first, and every
    item still appears once, so the tail of a load-balanced group acts as its own fallback."""
    if len(items) <= 1:
        return list(items)
    keyed = [(rng.random() ** (1.0 / w), i) for i, w in enumerate(weights)]
    keyed.sort(reverse=True)
    return [items[i] for _, i in keyed]


def order_children(
    strategy: str,
    children: Sequence[T],
    weights: Sequence[float],
    labels: Sequence[str],
    stats: TargetStats,
    rng: random.Random,
    group: int,
    explore: float = 0.1,
) -> list[T]:
    """The order in which to try a group's children for this request."""
    if strategy == "round_robin":
        start = stats.next_turn(group, len(children))
        return [*children[start:], *children[:start]]
    if strategy == "least_outstanding":
        ranked = sorted(range(len(children)), key=lambda i: (stats.outstanding(labels[i]), rng.random()))
        return [children[i] for i in ranked]
    if strategy == "lowest_latency":
        # Unmeasured targets first (so each gets measured), then by EWMA; with probability `explore` a
        # weighted random order instead, so a target that was slow once gets another chance.
        if rng.random() < explore:
            return weighted_order(children, weights, rng)

        def latency_key(i: int) -> tuple[float, float]:
            measured = stats.latency(labels[i])
            return (float("-inf") if measured is None else measured, rng.random())

        ranked = sorted(range(len(children)), key=latency_key)
        return [children[i] for i in ranked]
    return weighted_order(children, weights, rng)
