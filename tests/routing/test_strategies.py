"""Load-balancing strategies order a group's children; each is checked on the property it promises."""

from __future__ import annotations

import random
from collections import Counter

from sidestep.routing.strategies import TargetStats, order_children

KIDS = ["a", "b", "c"]
W = [1.0, 1.0, 1.0]


def test_round_robin_rotates_through_every_child() -> None:
    stats = TargetStats()
    firsts = [order_children("round_robin", KIDS, W, KIDS, stats, random.Random(0), group=1)[0] for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]
    assert order_children("round_robin", KIDS, W, KIDS, stats, random.Random(0), group=2)[0] == "a"  # own counter


def test_least_outstanding_prefers_the_idlest_target() -> None:
    stats = TargetStats()
    for _ in range(3):
        stats.started("a")
    stats.started("b")
    order = order_children("least_outstanding", KIDS, W, KIDS, stats, random.Random(0), group=1)
    assert order == ["c", "b", "a"]
    stats.finished("a", None)
    assert stats.outstanding("a") == 2


def test_lowest_latency_measures_unknown_targets_first_then_prefers_the_fastest() -> None:
    stats = TargetStats(alpha=0.5)
    stats.started("a")
    stats.finished("a", 300.0)
    stats.started("b")
    stats.finished("b", 100.0)
    assert order_children("lowest_latency", KIDS, W, KIDS, stats, random.Random(1), group=1, explore=0.0)[0] == "c"
    stats.started("c")
    stats.finished("c", 200.0)
    order = order_children("lowest_latency", KIDS, W, KIDS, stats, random.Random(1), group=1, explore=0.0)
    assert order == ["b", "c", "a"]
    stats.finished("b", 500.0)  # EWMA: 100 + 0.5 * (500 - 100) = 300
    assert stats.latency("b") == 300.0


def test_lowest_latency_still_explores() -> None:
    stats = TargetStats()
    for label, ms in (("a", 10.0), ("b", 500.0), ("c", 900.0)):
        stats.finished(label, ms)
    rng = random.Random(5)
    firsts = Counter(
        order_children("lowest_latency", KIDS, W, KIDS, stats, rng, group=1, explore=0.2)[0] for _ in range(2000)
    )
    assert firsts["a"] > 1700
    assert firsts["b"] + firsts["c"] > 50  # exploration gives the slow ones a chance


def test_weighted_is_the_default() -> None:
    rng = random.Random(2)
    firsts = Counter(
        order_children("weighted", ["x", "y"], [1.0, 4.0], ["x", "y"], TargetStats(), rng, 1)[0] for _ in range(2000)
    )
    assert 0.75 < firsts["y"] / 2000 < 0.85
