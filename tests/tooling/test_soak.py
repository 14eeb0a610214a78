"""The soak's verdict (bench/soak.py): growth past a limit and 5xx answers to hostile input fail it."""

from __future__ import annotations

from collections import Counter

from bench.soak import Limits, Sample, verdict, warmup_rounds


def sample(number: int, rss: float, fds: int = 20, metrics: int = 10_000, **statuses: int) -> Sample:
    return Sample(number, rss, fds, metrics, 1.0, Counter({k.replace("_", " "): v for k, v in statuses.items()}))


def test_flat_after_warmup_passes_even_if_warmup_grew() -> None:
    samples = [sample(0, 40), sample(1, 70), sample(2, 72), sample(3, 71)]
    assert verdict(samples, warmup=1, limits=Limits(rss_mb=8)) == []


def test_growth_past_each_limit_is_named() -> None:
    samples = [sample(0, 40), sample(1, 50, fds=20, metrics=10_000), sample(2, 90, fds=80, metrics=500_000)]
    problems = verdict(samples, warmup=1, limits=Limits(rss_mb=8, fds=10, metrics_bytes=1000))
    assert [p.split()[0] for p in problems] == ["RSS", "file", "/metrics"]


def test_hostile_input_answered_with_5xx_or_timeout_fails() -> None:
    samples = [sample(0, 40, **{"hostile-deep_500": 3, "hostile-name_timeout": 1, "hostile-broken_400": 5})]
    assert sorted(verdict(samples, warmup=0, limits=Limits())) == ["1x hostile-name timeout", "3x hostile-deep 500"]


def test_failed_streams_are_not_a_verdict_on_flatness() -> None:
    samples = [sample(0, 40, **{"stream flaky 200 broken": 10}), sample(1, 41)]
    assert verdict(samples, warmup=0, limits=Limits()) == []


def test_the_baseline_is_taken_once_the_per_name_tables_are_full() -> None:
    assert warmup_rounds(4000) == 4  # 1,200 invented and 320 hostile names a round: 5,000 after 3.3 rounds
    assert warmup_rounds(4000, frozenset({"hostile"})) == 16
    assert warmup_rounds(4000, frozenset({"streams", "continue"})) == 1  # no names: only pools to warm
