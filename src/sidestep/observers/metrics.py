"""Prometheus metrics, served on `GET /metrics` (`server.metrics: true`).

`Metrics` observes the outcome record (`sidestep.outcome`). Counters and a latency histogram live in plain
dicts: a request costs a few dictionary updates once it is over (no lock, no I/O, nothing per stream
chunk; the histogram still measures to the response head), and the text exposition format is built only
when scraped; plugins add their own series then (`ExportsMetrics`: governance's budgets). Breaker states
are read from the live breakers at scrape time. Label sets are bounded: past `max_series` distinct
(endpoint, status, provider, model) combinations — clients may name any `provider/model` — new ones are
counted under `model="other"`, and so are attempts a provider rejected (400/404) at a model the config
does not name: an invented name leaves no series of its own. `sidestep_state_overflow_total` counts what
found a per-name table full (breakers, latency statistics, label sets).

With `server.metrics_key` a scrape must send `Authorization: Bearer <key>` (Prometheus's
`authorization: {credentials: …}`): budget series name keys and teams with their spend. Without it the
endpoint is open, as it was; keep it off a public interface then.

With `--workers N` each worker counts its own requests and answers the scrape that reaches it; scrape
each worker's port separately or sum in a recording rule once cluster mode shares state.
"""

from __future__ import annotations

import hmac
from bisect import bisect_left
from collections.abc import Callable, Mapping
from typing import Protocol

from sidestep.errors import Attempt
from sidestep.outcome import Exchange
from sidestep.server.types import Endpoint, Request, Response

__all__ = ["BUCKETS", "Metrics", "labels"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
_CONTENT_TYPE = ("content-type", "text/plain; version=0.0.4; charset=utf-8")
_NEEDS_KEY = b"GET /metrics needs `Authorization: Bearer <server.metrics_key>`.\n"
_REJECTED = frozenset({"400", "404"})  # outcomes that say "no such model" when the model is no configured one


# The server sits below routing: what it reads of routing's state at scrape time, it names by shape.
class Table(Protocol):
    """A bounded per-name table that counts what found it full (`routing.strategies.TargetStats`)."""

    overflow: int


class BreakerTable(Table, Protocol):
    """The live circuit breakers (`routing.breaker.Breakers`): (provider, key, model) → state."""

    def states(self) -> Mapping[tuple[str, str, str], str]: ...


class Metrics:
    """An observer of every finished exchange; it serves the scrape itself (`endpoints`), unobserved."""

    wants_usage = False

    def __init__(
        self,
        breakers: BreakerTable,
        *,
        max_series: int = 5_000,
        stats: Table | None = None,
        configured: Callable[[str], bool] | None = None,
        exported: Callable[[], list[str]] | None = None,
        key: str | None = None,
    ) -> None:
        """`configured` says whether a `provider/model` label is one the config names (`Gateway.configured`);
        `exported` gives the plugins' own lines at scrape time (governance's budgets)."""
        self._key = f"Bearer {key}".encode() if key is not None else None
        self._stats = stats
        self._configured = configured
        self.overflow = 0  # observations folded into model="other" because a table was full
        self._exported = exported
        self._breakers = breakers
        self._max_series = max_series
        self._requests: dict[tuple[str, int, str, str], int] = {}
        self._attempts: dict[tuple[str, str, str], int] = {}  # (provider, model, outcome) → tries and skips
        self._buckets: dict[str, list[int]] = {}  # endpoint → count per bucket (the last is +Inf)
        self._sums: dict[str, float] = {}

    def endpoints(self) -> Mapping[str, Endpoint]:
        # The scrape is not traffic: it builds no outcome record, so it is neither counted nor logged.
        return {"/metrics": Endpoint("metrics", self.scrape, observed=False)}

    async def scrape(self, request: Request) -> Response:
        if self._key is not None and not hmac.compare_digest(
            (request.header("authorization") or "").encode(), self._key
        ):
            return Response(401, _NEEDS_KEY, [_CONTENT_TYPE, ("www-authenticate", "Bearer")])
        return Response(200, self.render().encode(), [_CONTENT_TYPE])

    def observe(self, exchange: Exchange) -> None:
        """Count the request under its endpoint, status and who served it; its time to the response head;
        every try and skip at a target."""
        endpoint = exchange.operation
        key = (endpoint, exchange.status, exchange.provider, exchange.model)
        count = self._requests.get(key)
        if count is None and len(self._requests) >= self._max_series:
            key = (endpoint, exchange.status, exchange.provider, "other")
            count = self._requests.get(key)
            self.overflow += 1
        self._requests[key] = (count or 0) + 1
        buckets = self._buckets.get(endpoint)
        if buckets is None:
            buckets = self._buckets[endpoint] = [0] * (len(BUCKETS) + 1)
            self._sums[endpoint] = 0.0
        seconds = exchange.head - exchange.started
        buckets[bisect_left(BUCKETS, seconds)] += 1
        self._sums[endpoint] += seconds
        for attempt in exchange.attempts:
            self.attempt(attempt)

    def attempt(self, attempt: Attempt) -> None:
        """One try or skip at a target: its HTTP status, else what happened."""
        if attempt.status is not None:
            outcome = str(attempt.status)
        elif attempt.reason.startswith("skipped"):
            outcome = "skipped"
        else:
            outcome = "cancelled" if attempt.reason == "cancelled" else "error"  # timeout, connection error
        key = (attempt.provider, attempt.model, outcome)
        count = self._attempts.get(key)
        if count is None and (self._full(self._attempts) or self._unknown(attempt, outcome)):
            key = (attempt.provider, "other", outcome)
            count = self._attempts.get(key)
        self._attempts[key] = (count or 0) + 1

    def _full(self, table: Mapping[tuple[str, str, str], int]) -> bool:
        full = len(table) >= self._max_series
        self.overflow += full
        return full

    def _unknown(self, attempt: Attempt, outcome: str) -> bool:
        """A provider said no to a model the config does not name: no series of its own for it."""
        configured = self._configured
        return outcome in _REJECTED and configured is not None and not configured(f"{attempt.provider}/{attempt.model}")

    def render(self) -> str:
        """The Prometheus text exposition format (0.0.4)."""
        out = [
            "# HELP sidestep_requests_total Requests answered, by endpoint, status and the target that served them.",
            "# TYPE sidestep_requests_total counter",
        ]
        for (endpoint, status, provider, model), count in sorted(self._requests.items()):
            pairs = labels(endpoint=endpoint, status=str(status), provider=provider, model=model)
            out.append(f"sidestep_requests_total{{{pairs}}} {count}")
        out += [
            "# HELP sidestep_upstream_attempts_total Tries at targets (retries and failovers included) and targets"
            " skipped (open breaker, resting keys, a missing capability), by outcome: an HTTP status, skipped,"
            " error (timeout, connection) or cancelled.",
            "# TYPE sidestep_upstream_attempts_total counter",
        ]
        for (provider, model, outcome), count in sorted(self._attempts.items()):
            pairs = labels(provider=provider, model=model, outcome=outcome)
            out.append(f"sidestep_upstream_attempts_total{{{pairs}}} {count}")
        out += [
            "# HELP sidestep_request_duration_seconds Time from a request to its response head (streams: first token).",
            "# TYPE sidestep_request_duration_seconds histogram",
        ]
        for endpoint, buckets in sorted(self._buckets.items()):
            running = 0
            for bound, count in zip((*BUCKETS, None), buckets, strict=True):
                running += count
                le = "+Inf" if bound is None else repr(bound)
                out.append(f"sidestep_request_duration_seconds_bucket{{{labels(endpoint=endpoint, le=le)}}} {running}")
            out.append(f"sidestep_request_duration_seconds_sum{{{labels(endpoint=endpoint)}}} {self._sums[endpoint]!r}")
            out.append(f"sidestep_request_duration_seconds_count{{{labels(endpoint=endpoint)}}} {running}")
        out += [
            "# HELP sidestep_breaker_state Circuit breaker per provider, model and key: 0 closed, 1 half-open, 2 open.",
            "# TYPE sidestep_breaker_state gauge",
        ]
        for (provider, key, model), state in sorted(self._breakers.states().items()):
            pairs = labels(provider=provider, model=model, key=key)
            out.append(f"sidestep_breaker_state{{{pairs}}} {_BREAKER_VALUES.get(state, 0)}")
        if self._exported is not None:
            out += self._exported()
        out += self._overflow_lines()
        return "\n".join(out) + "\n"

    def _overflow_lines(self) -> list[str]:
        tables = {"breakers": self._breakers.overflow, "metric_series": self.overflow}
        if self._stats is not None:
            tables["latency_stats"] = self._stats.overflow
        return [
            "# HELP sidestep_state_overflow_total Names that found a per-name table full: breakers and latency"
            ' statistics dropped for room (or never kept), label sets counted under model="other".',
            "# TYPE sidestep_state_overflow_total counter",
            *(f'sidestep_state_overflow_total{{table="{table}"}} {count}' for table, count in sorted(tables.items())),
        ]


def labels(**pairs: str) -> str:
    """A sample's label set, values escaped as the exposition format wants."""
    return ",".join(f'{name}="{_escape(value)}"' for name, value in pairs.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
