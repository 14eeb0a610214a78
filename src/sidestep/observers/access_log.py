"""The access log: one JSON line per HTTP request the gateway answers, written in batches off the request
path (`sidestep.batch`). It observes the outcome record (`sidestep.outcome`): a request costs one small
record appended to a bounded buffer, once the request is over (a stream: at its end; `ms` still measures
to its response head)."""

from __future__ import annotations

from typing import IO

from sidestep.batch import BatchWriter, open_sink, thousandths
from sidestep.outcome import Exchange
from sidestep.records import AccessLine

__all__ = ["AccessLog", "open_sink"]


class AccessLog:
    """An observer of every finished exchange. `close()` writes what is left."""

    wants_usage = False

    def __init__(
        self,
        sink: IO[bytes],
        *,
        interval: float = 0.1,
        max_lines: int = 10_000,
        owns_sink: bool = False,
    ) -> None:
        self._writer = BatchWriter[AccessLine](
            sink, name="access_log", interval=interval, max_lines=max_lines, owns_sink=owns_sink
        )

    def observe(self, exchange: Exchange) -> None:
        writer = self._writer
        if writer.full:
            writer.drop()
            return
        request = exchange.request
        attempts = exchange.attempts
        line = AccessLine(
            thousandths(exchange.head),
            request.method,
            request.path,
            exchange.status,
            thousandths((exchange.head - exchange.started) * 1000.0),
            exchange.streamed,
            exchange.provider or None,
            exchange.model or None,
            str(len(attempts)) if attempts else None,
            exchange.request_id,
            request.client[0] if request.client is not None else None,
        )
        writer.add(line)

    def flush(self) -> None:
        self._writer.flush()

    def start(self) -> None:
        """Nothing to start: the writer schedules its flush when a line arrives."""

    def close(self) -> None:
        self._writer.close()
