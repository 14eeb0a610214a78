"""The semantic index's bounds (entries and memory) and the Redis vector records' decoding, without a Redis."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

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
