"""The semantic index: vectors of cached conversations, searched for the nearest above a threshold.

On an exact miss a conversation that opted in is embedded through the gateway's own routing (a configured
embeddings route, so the call fails over like any other) and compared, by cosine similarity, with the
conversations cached in the same bucket — the same tenant, model, tools and sampling parameters
(`key.semantic_parts`). The nearest at or above the threshold points at the exact entry whose answer is
served. Vectors live in each process, a float32 matrix per bucket searched by brute force (one matrix
product); a bucket of `ann.ANN_FROM` vectors and more also gets an approximate graph when usearch is installed
(`ann`: measured, brute force loses from about a thousand vectors on). They are bounded by `max_entries` and
`max_bytes` with the least recently added out first, and dropped when their entry expires or is gone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from sidestep.errors import SidestepError
from sidestep.plugins.cache.ann import ANN_FROM, Ann
from sidestep.plugins.capabilities import SideRequest

__all__ = ["Embedder", "SemanticIndex", "VectorFeed"]

Vector = npt.NDArray[np.float32]


class VectorFeed(Protocol):
    """How the vectors one process files reach the others' indexes (`redis_vectors.RedisVectorFeed`)."""

    def publish(self, bucket: str, key: str, vector: Vector, expires: float) -> None: ...

    def counters(self) -> dict[str, float]: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class Embedder:
    """Text → a unit vector, through the gateway's routing (`bind` hands it the means)."""

    def __init__(self, route: str) -> None:
        self._route = route
        self._send: SideRequest | None = None
        self.failures = 0

    def bind(self, send: SideRequest) -> None:
        self._send = send

    async def embed(self, text: str) -> Vector | None:
        """The text's vector, or None when the embeddings route fails (counted: the lookup is a miss)."""
        if self._send is None:
            return None
        try:
            body = await self._send("embeddings", {"model": self._route, "input": text})
            data = msgspec.json.decode(body)["data"][0]["embedding"]
            vector = np.asarray(data, dtype=np.float32)
        except (SidestepError, msgspec.DecodeError, KeyError, IndexError, TypeError, ValueError):
            self.failures += 1
            return None
        norm = float(np.linalg.norm(vector))
        if vector.ndim != 1 or norm == 0.0:
            self.failures += 1
            return None
        return vector / norm


class _Bucket:
    """The vectors of one bucket as rows of a matrix that grows by doubling; a removed row takes the last.
    From `ann_from` vectors on, a graph (`ann.Ann`) beside it when one can be made."""

    def __init__(self, dims: int, graphs: Callable[[int], Ann] | None, ann_from: int) -> None:
        self.matrix: Vector = np.empty((8, dims), dtype=np.float32)
        self.keys: list[str] = []
        self.expires: list[float] = []
        self.rows: dict[str, int] = {}
        self._graphs = graphs
        self._ann_from = ann_from
        self.ann: Ann | None = None

    @property
    def nbytes(self) -> int:
        return self.matrix.nbytes + (self.ann.nbytes if self.ann is not None else 0)

    def add(self, key: str, vector: Vector, expires: float) -> None:
        row = self.rows.get(key)
        if row is None:
            row = len(self.keys)
            if row == len(self.matrix):
                self.matrix = np.concatenate([self.matrix, np.empty_like(self.matrix)])
            self.keys.append(key)
            self.expires.append(expires)
            self.rows[key] = row
        self.matrix[row] = vector
        self.expires[row] = expires
        if self.ann is None and self._graphs is not None and len(self.keys) >= self._ann_from:
            self.ann = self._graphs(self.matrix.shape[1])
            self.ann.backlog = [old for old in self.keys if old != key]
        if self.ann is not None:
            self.ann.put(key, vector)
            self.ann.catch_up(self._vector_of)

    def _vector_of(self, key: str) -> Vector | None:
        row = self.rows.get(key)
        return self.matrix[row] if row is not None else None

    def candidates(self, vector: Vector) -> list[tuple[str, float]]:
        """The nearest few, nearest first, with their exact similarity (the graph only proposes them)."""
        count = len(self.keys)
        if self.ann is not None and self.ann.ready:
            keys = self.ann.search(vector)
            rows = [self.rows[key] for key in keys if key in self.rows]
            similarities = self.matrix[rows] @ vector
            ranked = sorted(zip(similarities.tolist(), rows, strict=True), reverse=True)
        else:
            similarities = self.matrix[:count] @ vector
            top = np.argpartition(-similarities, 3)[:3] if count > 3 else np.arange(count)
            ranked = sorted(((float(similarities[row]), int(row)) for row in top), reverse=True)
        return [(self.keys[row], similarity) for similarity, row in ranked]

    def remove(self, key: str) -> None:
        row = self.rows.pop(key)
        last = len(self.keys) - 1
        if row != last:
            moved = self.keys[last]
            self.matrix[row] = self.matrix[last]
            self.keys[row], self.expires[row] = moved, self.expires[last]
            self.rows[moved] = row
        self.keys.pop()
        self.expires.pop()
        if self.ann is not None:
            self.ann.remove(key)
            if len(self.keys) < self._ann_from // 2:  # small again: brute force, and the graph's memory back
                self.ann = None
        if len(self.matrix) > 8 and len(self.keys) <= len(self.matrix) // 4:  # mostly empty: give memory back
            self.matrix = self.matrix[: len(self.matrix) // 2].copy()


class SemanticIndex:
    """Vectors by bucket, bounded by `max_entries` and by `max_bytes` (the matrices' and graphs' memory), least
    recently added out first; a vector found expired, or whose entry is gone (`forget`), is dropped. `graphs`
    (`ann.usearch_graphs()`): big buckets get an approximate index; None: brute force at every size."""

    def __init__(
        self,
        max_entries: int,
        clock: Callable[[], float],
        max_bytes: int = 64 * 2**20,
        graphs: Callable[[int], Ann] | None = None,
        ann_from: int = ANN_FROM,
    ) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._graphs = graphs
        self._ann_from = ann_from
        self._buckets: dict[str, _Bucket] = {}
        self._order: OrderedDict[str, str] = OrderedDict()  # key → its bucket, oldest first
        self.bytes = 0  # the matrices' memory, grown rows included, and the graphs'
        self.evictions = 0

    def nearest(self, bucket: str, vector: Vector, threshold: float) -> tuple[str, float] | None:
        """The key of the nearest live vector in `bucket` at or above `threshold`, and its similarity."""
        found = self._buckets.get(bucket)
        if found is None or not found.keys or found.matrix.shape[1] != vector.shape[0]:
            return None
        for key, similarity in found.candidates(vector):  # an expired nearest goes, and the next is tried
            if similarity < threshold:
                return None
            if found.expires[found.rows[key]] > self._clock():
                return key, similarity
            self.forget(key)
        return None

    def add(self, bucket: str, key: str, vector: Vector, expires: float) -> None:
        if self._order.get(key, bucket) != bucket:
            self.forget(key)  # the same entry filed under another bucket (a record from elsewhere): it moves
        found = self._buckets.get(bucket)
        if found is None or found.matrix.shape[1] != vector.shape[0]:  # new, or the embedding model changed
            if found is not None:
                for old in list(found.keys):
                    self.forget(old)
            found = self._buckets[bucket] = _Bucket(vector.shape[0], self._graphs, self._ann_from)
            self.bytes += found.nbytes
        before = found.nbytes
        found.add(key, vector, expires)
        self.bytes += found.nbytes - before
        self._order[key] = bucket
        self._order.move_to_end(key)
        while self._order and (len(self._order) > self._max_entries or self.bytes > self._max_bytes):
            self.forget(next(iter(self._order)))
            self.evictions += 1

    def forget(self, key: str) -> None:
        """Drop `key`'s vector, if there is one."""
        name = self._order.pop(key, None)
        if name is None:
            return
        bucket = self._buckets[name]
        before = bucket.nbytes
        bucket.remove(key)
        self.bytes += bucket.nbytes - before
        if not bucket.keys:
            self.bytes -= bucket.nbytes
            del self._buckets[name]

    def __contains__(self, key: str) -> bool:
        return key in self._order

    def __len__(self) -> int:
        return len(self._order)
