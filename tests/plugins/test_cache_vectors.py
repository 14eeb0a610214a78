"""The semantic index's bounds (entries and memory), its graph for big buckets (usearch), and the Redis vector
records' decoding, without a Redis."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from sidestep.plugins.cache.ann import usearch_graphs
from sidestep.plugins.cache.redis_vectors import MAX_DIMS, decode_record, encode_record
from sidestep.plugins.cache.semantic import SemanticIndex, Vector
from sidestep.plugins.cache.store import decode_entry
from sidestep.testing import FakeClock


def unit(dims: int, at: int) -> Vector:
    return np.eye(dims, dtype=np.float32)[at]


def test_the_index_is_bounded_by_memory_and_gives_it_back() -> None:
    index = SemanticIndex(max_entries=1000, clock=FakeClock(0.0), max_bytes=64 * 4 * 40)
    for n in range(100):
        index.add("t", f"k{n}", unit(64, n % 64), expires=10.0)
    assert index.bytes <= 64 * 4 * 40 and index.evictions > 0 and "k99" in index and "k0" not in index
    for n in range(100):
        index.forget(f"k{n}")
    assert len(index) == 0 and index.bytes == 0
    index.forget("never-there")  # nothing to do


def test_a_key_filed_again_under_another_bucket_moves() -> None:
    index = SemanticIndex(max_entries=10, clock=FakeClock(0.0))
    index.add("t:a", "k", unit(4, 0), expires=10.0)
    index.add("t:b", "k", unit(4, 1), expires=10.0)
    assert len(index) == 1 and index.nearest("t:a", unit(4, 0), 0.5) is None
    assert index.nearest("t:b", unit(4, 1), 0.5) == ("k", 1.0)
    index.add("t:b", "other", unit(8, 1), expires=10.0)  # another embedding model: the bucket starts again
    assert len(index) == 1 and index.nearest("t:b", unit(8, 1), 0.5) == ("other", 1.0)


def test_a_record_round_trips_with_its_vector_made_unit_length() -> None:
    raw = encode_record("me", "key:a:bucket", "chat:key:a:digest", 12.5, np.array([3.0, 4.0], dtype=np.float32))
    decoded = decode_record(raw)
    assert decoded is not None
    origin, bucket, key, expires, vector = decoded
    assert (origin, bucket, key, expires) == ("me", "key:a:bucket", "chat:key:a:digest", 12.5)
    assert np.allclose(vector, [0.6, 0.8])


@pytest.mark.parametrize(
    "fields",
    [
        (1, "o", "key:a:b", "chat:key:a:d", 1.0),  # a field short
        (1, "", "key:a:b", "chat:key:a:d", 1.0, b"\0\0\x80?"),  # no origin
        (1, "o", "key:a:b", "chat:key:a:d", float("inf"), b"\0\0\x80?"),  # expires never
        (1, "o", "key:a:b", "chat:key:a:d", True, b"\0\0\x80?"),  # a bool is no time
        (1, "o", "key:a:b", "chat:key:a:d", 1.0, b"\0\0\x80"),  # not whole floats
        (1, "o", "key:a:b", "chat:key:a:d", 1.0, "\0\0\x80?"),  # text, not bytes
        (1, "o", "key:b:b", "chat:key:a:d", 1.0, b"\0\0\x80?"),  # tenant a's key in tenant b's bucket
        (1, "o", "key:a:b", "chat:key:a:d", 1.0, b"\0\0\x80\x7f"),  # infinite
        (1, "o", "key:a:b", "chat:key:a:d", 1.0, np.full(4, 3e38, "<f4").tobytes()),  # its length overflows
        (1, "o", ["key:a:b"], "chat:key:a:d", 1.0, b"\0\0\x80?"),  # a list for a name
        {"v": 1},
    ],
)
def test_an_unsound_record_is_refused(fields: object) -> None:
    assert decode_record(msgspec.msgpack.encode(fields)) is None


def test_oversized_or_odd_payloads_are_refused() -> None:
    assert decode_record(b"\x00" * (MAX_DIMS * 4 + 5000)) is None
    assert decode_record("text") is None and decode_record(None) is None and decode_record(b"") is None
    nested = b"\x91" * 60_000 + b"\x00"  # a list in a list in a list … (within the size bound)
    assert decode_record(nested) is None and decode_entry(nested) is None


def test_a_big_bucket_gets_a_graph_built_a_few_vectors_at_a_time_and_answers_as_brute_force_does() -> None:
    graphs = usearch_graphs()
    assert graphs is not None  # usearch is in the dev extra
    clock = FakeClock(0.0)
    index = SemanticIndex(10_000, clock, graphs=graphs, ann_from=64)
    plain = SemanticIndex(10_000, clock)  # brute force alone
    rng = np.random.default_rng(15)
    rows = rng.standard_normal((400, 32)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    for n, row in enumerate(rows[:70]):
        index.add("t", f"k{n}", row, expires=10.0)
    bucket = index._buckets["t"]
    assert bucket.ann is not None and not bucket.ann.ready  # started at 64, catching up a few per add
    for n, row in enumerate(rows[70:], start=70):
        index.add("t", f"k{n}", row, expires=10.0)
    for n, row in enumerate(rows):
        plain.add("t", f"k{n}", row, expires=10.0)
    assert bucket.ann.ready and index.bytes > plain.bytes  # the graph's memory is counted
    noisy = rows[:50] + 0.05 * rng.standard_normal((50, 32)).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    agree = sum(index.nearest("t", q, 0.5) == plain.nearest("t", q, 0.5) for q in noisy)
    assert agree >= 48  # approximate, with exact similarities: nearly always the same answer
    hit = index.nearest("t", rows[7], 0.5)
    assert hit is not None and hit[0] == "k7" and abs(hit[1] - 1.0) < 1e-5
    for n in range(380):
        index.forget(f"k{n}")
    assert bucket.ann is None and len(index) == 20  # small again: brute force, the graph's memory given back
    assert index.nearest("t", rows[390], 0.5) == plain.nearest("t", rows[390], 0.5)


def test_an_expired_candidate_from_the_graph_is_dropped_and_the_next_one_served() -> None:
    graphs = usearch_graphs()
    assert graphs is not None
    clock = FakeClock(0.0)
    index = SemanticIndex(100, clock, graphs=graphs, ann_from=4)
    near = np.array([1.0, 0.1, 0.0, 0.0], dtype=np.float32)
    near /= np.linalg.norm(near)
    for n, vector in enumerate([unit(4, 0), near, unit(4, 1), unit(4, 2), unit(4, 3)]):
        index.add("t", f"k{n}", vector, expires=5.0 if n == 0 else 50.0)
    assert index._buckets["t"].ann is not None and index._buckets["t"].ann.ready
    clock.advance(10)
    found = index.nearest("t", unit(4, 0), 0.9)
    assert found is not None and found[0] == "k1" and found[1] > 0.99 and "k0" not in index
