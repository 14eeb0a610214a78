"""`python -m bench.vector_index`: the semantic cache's nearest-neighbour lookup, numpy brute force against
`usearch` (HNSW), at a few index sizes and embedding dimensions; prints a Markdown table.

What is measured, per (size, dimensions): the median and p99 time of one lookup (one query vector, the nearest
above nothing — what `SemanticIndex.nearest` does), the time to add every vector, the memory the vectors take
(numpy: the matrix; usearch: `Index.memory_usage`, graph included) and usearch's recall@1 against the exact
answer. The vectors are random unit vectors (the worst case for an approximate index: no clusters to exploit);
each query is a stored vector with noise, as a paraphrase is near its original. Single-threaded, as a gateway
worker is. Not a test: run it by hand (`usearch` from the `cache` extra's optional `usearch`, numpy brute force
alone when it is not installed).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


def unit_rows(rng: np.random.Generator, count: int, dims: int) -> Matrix:
    rows = rng.standard_normal((count, dims), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def timed(fn: Callable[[Matrix], Any], queries: Matrix) -> list[float]:
    times = []
    for query in queries:
        start = time.perf_counter()
        fn(query)
        times.append(time.perf_counter() - start)
    return times


def numpy_row(matrix: Matrix, queries: Matrix, truth: list[int]) -> dict[str, Any]:
    def nearest(query: Matrix) -> int:
        return int(np.argmax(matrix @ query))

    times = timed(nearest, queries)
    return _row("numpy brute force", times, 0.0, matrix.nbytes, 1.0)


def usearch_row(matrix: Matrix, queries: Matrix, truth: list[int], dtype: str) -> dict[str, Any] | None:
    try:
        from usearch.index import Index
    except ImportError:
        return None
    index = Index(ndim=matrix.shape[1], metric="cos", dtype=dtype)
    start = time.perf_counter()
    index.add(np.arange(len(matrix)), matrix, threads=1)
    built = time.perf_counter() - start
    found: list[int] = []

    def nearest(query: Matrix) -> None:
        matches = index.search(query, 1, threads=1)
        found.append(int(matches.keys[0]) if len(matches.keys) else -1)

    times = timed(nearest, queries)
    recall = sum(1 for got, want in zip(found, truth, strict=True) if got == want) / len(truth)
    return _row(f"usearch HNSW ({dtype})", times, built, int(index.memory_usage), recall)


def _row(name: str, times: list[float], built: float, memory: int, recall: float) -> dict[str, Any]:
    ordered = sorted(times)
    return {
        "index": name,
        "p50_us": statistics.median(times) * 1e6,
        "p99_us": ordered[int(len(ordered) * 0.99) - 1] * 1e6,
        "build_s": built,
        "mb": memory / 2**20,
        "recall": recall,
    }


def measure(sizes: list[int], dims: list[int], queries: int, dtypes: list[str]) -> list[dict[str, Any]]:
    rng = np.random.default_rng(15)
    rows: list[dict[str, Any]] = []
    for dim in dims:
        for size in sizes:
            matrix = unit_rows(rng, size, dim)
            picked = rng.integers(0, size, queries)
            noisy = matrix[picked] + 0.3 / np.sqrt(dim) * rng.standard_normal((queries, dim), dtype=np.float32)
            noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
            truth = [int(np.argmax(matrix @ query)) for query in noisy]
            found = [numpy_row(matrix, noisy, truth)]
            for dtype in dtypes:
                row = usearch_row(matrix, noisy, truth, dtype)
                if row is not None:
                    found.append(row)
            rows.extend({"vectors": size, "dims": dim, **row} for row in found)
            del matrix
            gc.collect()
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| vectors | dims | index | lookup p50 µs | p99 µs | build s | MiB | recall@1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines.extend(
        f"| {r['vectors']:,} | {r['dims']} | {r['index']} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | "
        f"{r['build_s']:.1f} | {r['mb']:.1f} | {r['recall']:.2f} |"
        for r in rows
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vector_index", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="index sizes, comma-separated")
    parser.add_argument("--dims", default="256,1536", help="embedding dimensions, comma-separated")
    parser.add_argument("--queries", type=int, default=300, help="lookups timed per (size, dims)")
    parser.add_argument("--dtypes", default="f32", help="usearch scalar types (f32, f16, i8), comma-separated")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    dims = [int(d) for d in args.dims.split(",")]
    print(render(measure(sizes, dims, args.queries, args.dtypes.split(","))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
