"""Lines written in batches off the request path (the access log and the request log).

A request appends one small record to an in-memory buffer; a timer encodes and writes the buffer every
`interval` seconds in one `write`, or at once in batches of 256 when traffic is heavy. The buffer is
bounded: when a stalled sink lets it fill, further records are dropped and counted, and the count is
written as a line of its own once the sink drains — never unbounded memory, never a blocked request.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import IO, Generic, TypeVar

import msgspec

__all__ = ["BatchWriter", "open_sink", "thousandths"]

T = TypeVar("T")
_BATCH = 256  # records per write when traffic is heavy (~1 ms of encoding)


class BatchWriter(Generic[T]):
    """Records (msgspec structs of plain values, or anything else msgspec encodes) written as JSON lines."""

    def __init__(
        self,
        sink: IO[bytes],
        *,
        name: str,
        interval: float = 0.1,
        max_lines: int = 10_000,
        owns_sink: bool = False,
    ) -> None:
        self._sink = sink
        self._name = name  # the dropped-lines record says `"event": "<name>_dropped"`
        self._owns_sink = owns_sink
        self._interval = interval
        self._max = max_lines
        self._records: list[T] = []
        self._dropped = 0
        self._timer: asyncio.Handle | None = None
        encoder = msgspec.json.Encoder()
        self._encode, self._encode_lines = encoder.encode, encoder.encode_lines

    def add(self, record: T) -> None:
        if len(self._records) >= self._max:
            self._dropped += 1
            return
        self._records.append(record)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)
        elif len(self._records) == _BATCH:  # busy: write now, in small batches, so no flush stalls the loop long
            self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_soon(self.flush)

    @property
    def full(self) -> bool:
        """No room left: a caller can skip building its record and `drop()` instead."""
        return len(self._records) >= self._max

    def drop(self) -> None:
        self._dropped += 1

    def flush(self) -> None:
        self._timer = None
        records, self._records = self._records, []
        out = self._encode_lines(records) if records else b""
        if self._dropped:
            dropped = {"ts": thousandths(time.time()), "event": f"{self._name}_dropped", "lines": self._dropped}
            out += self._encode(dropped) + b"\n"
            self._dropped = 0
        if out:
            try:
                self._sink.write(out)
                self._sink.flush()
            except OSError:
                pass  # a full disk must not take the gateway down; the lines are lost, requests are not

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.flush()
        if self._owns_sink:
            self._sink.close()


def thousandths(value: float) -> float:
    """`value` (≥ 0: a time in seconds or ms) rounded to 3 decimals, for a log line: what `round(value, 3)`
    gives up to the last digit, at a third of its cost (which goes through a decimal string)."""
    return int(value * 1000.0 + 0.5) / 1000.0


def open_sink(target: str) -> IO[bytes]:
    """`stderr`/`-` → the process's stderr; anything else is a file path, appended to."""
    if target in ("stderr", "-"):
        return os.fdopen(os.dup(2), "ab", buffering=0)
    return open(target, "ab")
