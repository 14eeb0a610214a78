"""An approximate nearest-neighbour index for the semantic cache's big buckets: usearch's HNSW graph.

Measured (`bench/vector_index.py`, docs/benchmarks.md): numpy brute force — one matrix product — is as fast as
usearch up to a few hundred vectors and loses from about a thousand on (at 10,000 vectors of 1,536 dimensions a
lookup is tens of milliseconds against about one). So a bucket is searched by brute force until it holds
`ANN_FROM` vectors; from then on, when `usearch` is installed (the `cache` extra), a graph is built beside the
matrix. It is built a few vectors per add (`BACKFILL`), never all at once on the event loop, and used once it
holds every vector of its bucket; until then brute force answers. The graph stores vectors as 16-bit floats
(half the memory) and only proposes candidates: their exact similarity is taken from the bucket's float32
matrix, so a hit's similarity is the same whichever index found it. Below `ANN_FROM // 2` vectors the graph is
dropped again. Without usearch, brute force answers at every size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ANN_FROM", "BACKFILL", "CANDIDATES", "Ann", "usearch_graphs"]

ANN_FROM = 1024  # vectors in a bucket from which a graph is worth its memory (measured)
BACKFILL = 8  # vectors already in the bucket added to a new graph with each new one
CANDIDATES = 8  # what the graph proposes for an exact look

Vector = npt.NDArray[np.float32]


class Ann:
    """A graph of a bucket's vectors under integer labels, with the keys it still lacks (`backlog`)."""

    def __init__(self, graph: Any) -> None:
        self._graph = graph
        self._labels: dict[str, int] = {}
        self._keys: dict[int, str] = {}
        self._next = 0
        self.backlog: list[str] = []

    @property
    def ready(self) -> bool:
        return not self.backlog

    @property
    def nbytes(self) -> int:
        return int(self._graph.memory_usage)

    def put(self, key: str, vector: Vector) -> None:
        self.remove(key)
        label = self._next
        self._next += 1
        self._graph.add(label, vector, threads=1)
        self._labels[key] = label
        self._keys[label] = key

    def remove(self, key: str) -> None:
        label = self._labels.pop(key, None)
        if label is not None:
            del self._keys[label]
            self._graph.remove(label)

    def catch_up(self, vector_of: Callable[[str], Vector | None]) -> None:
        """Add up to `BACKFILL` keys of the backlog (`vector_of` None: the key has gone meanwhile)."""
        for _ in range(min(BACKFILL, len(self.backlog))):
            key = self.backlog.pop()
            vector = vector_of(key)
            if vector is not None and key not in self._labels:
                self.put(key, vector)

    def search(self, vector: Vector) -> list[str]:
        """The keys of the graph's nearest `CANDIDATES` (approximately)."""
        found = self._graph.search(vector, CANDIDATES, threads=1)
        return [self._keys[int(label)] for label in found.keys if int(label) in self._keys]


def usearch_graphs() -> Callable[[int], Ann] | None:
    """Makes a graph for vectors of the given dimensions; None when usearch is not installed."""
    try:
        from usearch.index import Index
    except ImportError:
        return None

    def make(dims: int) -> Ann:
        return Ann(Index(ndim=dims, metric="cos", dtype="f16"))

    return make
