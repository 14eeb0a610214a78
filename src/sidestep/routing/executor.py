"""The attempt loop: the only place that awaits a provider.

For each planned target, in order: choose a key (by weight, skipping keys that rest after a 429/401 and
keys whose breaker is open), send, and classify the outcome. A key-specific failure moves to the
provider's next key; a retryable one may retry the same target after a jittered backoff (policy); anything
else moves to the next target. A caller error (400 …) ends the request at once. Every try is an
`Attempt`; one deadline bounds tries, backoffs and hedges together. When every target failed or was
skipped, the least-recently-failed skipped target gets one last try rather than failing outright.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sidestep.config.model import KeyConfig
from sidestep.core.format import Wire
from sidestep.errors import AllAttemptsFailed, Attempt, UpstreamError, UpstreamRejected, UpstreamTimeout
from sidestep.log import event
from sidestep.routing.breaker import Breaker, BreakerPolicy, Breakers
from sidestep.routing.cooldown import Cooldowns
from sidestep.routing.plan import Planned, weighted_index
from sidestep.routing.provider import Provider, speaks
from sidestep.routing.retry import RetryPolicy, backoff_delay, should_retry
from sidestep.routing.served import Served, prefetch
from sidestep.routing.strategies import TargetStats
from sidestep.transport.body import in_hand, read_all
from sidestep.transport.types import Timeouts, Transport, UpstreamRequest, UpstreamResponse, is_budgeted

__all__ = ["Executor", "RouteState", "Served"]

log = logging.getLogger("sidestep.routing")

_KEY_STATUSES = frozenset({401, 403, 429})  # "this key", not "this provider": try the provider's other keys
_FAILOVER_4XX = frozenset({401, 403, 404})  # caller-looking errors that another target may still serve
_NO_RETRY = RetryPolicy()
_KeyPairs = tuple[list[tuple[KeyConfig, Breaker]], list[float]]  # a target's (key, breaker) pairs, their weights


@dataclass(slots=True)
class RouteState:
    """Live routing state shared by all requests of one gateway process."""

    breakers: Breakers = field(default_factory=lambda: Breakers(BreakerPolicy()))
    cooldowns: Cooldowns = field(default_factory=Cooldowns)
    stats: TargetStats = field(default_factory=TargetStats)


@dataclass(slots=True)
class _Run:
    operation: str
    source: Any  # the client's format as it converses (`formats.base.Converses`; None: a relayed-only API)
    body: dict[str, Any]
    deadline: float
    stream: bool
    attempts: list[Attempt] = field(default_factory=list)
    skipped: list[tuple[int, Planned]] = field(default_factory=list)
    deadline_hit: bool = False
    reclassified: bool = False
    needs: frozenset[str] = frozenset()
    ineligible: int = 0  # targets skipped because they cannot serve the operation at all


class Executor:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        transport: Transport,
        rng: random.Random,
        *,
        state: RouteState | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        replan: Callable[[Sequence[str]], Sequence[Planned]] | None = None,
        track_stats: bool = True,
        configured: Container[str] = frozenset(),
    ) -> None:
        """`configured`: the target labels the config names (routes, providers' listed models); a model
        outside it that its provider rejects leaves no breaker behind."""
        self._providers = providers
        self._configured = configured
        self._track = track_stats  # in-flight counts and latencies, for the strategies that read them
        # Adapters that fetch short-lived credentials (OAuth tokens) expose `async authorize(key)`.
        self._authorizers: dict[str, Callable[[KeyConfig], Awaitable[None]]] = {
            name: hook for name, provider in providers.items() if (hook := getattr(provider, "authorize", None))
        }
        # Adapters that serve some operations in a format of their own (`formats`, see `Provider`).
        self._formats: dict[str, Mapping[str, Wire]] = {
            name: formats for name, provider in providers.items() if (formats := getattr(provider, "formats", None))
        }
        self._replan = replan  # names (targets or routes) → a plan, for classified fallbacks
        self._transport = transport
        self._rng = rng
        self.state = state or RouteState()
        self.clock = clock
        self._sleep = sleep
        self._pairs: dict[str, _KeyPairs] = {}  # target label → its (key, breaker) pairs and their weights
        if self.state.breakers.on_change is None:
            self.state.breakers.on_change = _log_breaker

    async def run(
        self,
        operation: str,
        body: dict[str, Any],
        plan: Sequence[Planned],
        deadline: float,
        stream: bool,
        needs: frozenset[str] = frozenset(),
        *,
        source: Any,
    ) -> Served:
        """Try `plan`'s targets until one serves `operation`; `body` is the request as the client wrote it,
        in `source` (each adapter passes it through or translates it to its own format)."""
        run = _Run(operation, source, body, deadline, stream, needs=needs)
        index = 0
        while index < len(plan):
            planned = plan[index]
            hedge = planned.policy.hedge_delay
            try:
                if hedge is not None and index + 1 < len(plan):
                    served = await self._hedged(run, (index, planned), (index + 1, plan[index + 1]), hedge)
                    index += 2
                else:
                    served = await self._target(run, index, planned)
                    index += 1
            except UpstreamRejected as exc:
                plan, index = self._reclassified(run, planned, exc), 0  # raises when there is no such list
                continue
            if served is not None:
                return served
        if run.skipped and self.clock() < run.deadline:
            served = await self._last_resort(run)
            if served is not None:
                return served
        raise self._all_failed(run)

    async def _target(self, run: _Run, index: int, planned: Planned, force: bool = False) -> Served | None:
        """Every try this target gets: its keys, then its retries. None when it failed or was skipped."""
        provider = self._providers[planned.target.provider]
        target = planned.target
        if not provider.supports(run.operation):
            run.ineligible += 1
            self._skip(run, planned, f"skipped: no {run.operation} support")
            return None
        if run.needs:
            missing = run.needs & provider.config.lacks_for(target.model)
            if missing:
                run.ineligible += int(run.operation in missing)  # a model configured as lacking the operation
                self._skip(run, planned, f"skipped: lacks {', '.join(sorted(missing))}")
                return None
        policy = planned.policy.retry or _NO_RETRY
        tries = 0
        used: set[str] = set()
        while True:
            chosen = self._choose_key(provider, planned, used, force)
            if chosen is None:
                if tries == 0 and not force:
                    run.skipped.append((index, planned))
                    self._skip(run, planned, "skipped: circuit open or keys cooling down")
                return None
            if self.clock() >= run.deadline:
                run.deadline_hit = True
                return None
            tries += 1
            key, breaker = chosen
            outcome = await self._attempt(run, provider, planned, key, breaker, index, tries - 1)
            if isinstance(outcome, Served):
                return outcome
            if outcome.status in _KEY_STATUSES:
                used.add(key.name)
                continue
            if not should_retry(policy, outcome, tries):
                return None
            delay = backoff_delay(policy, tries, self._rng, outcome.retry_after)
            if self.clock() + delay >= run.deadline:
                run.deadline_hit = True  # waiting would outlive the deadline: stop now, report 504
                return None
            await self._sleep(delay)

    def _reclassified(self, run: _Run, planned: Planned, exc: UpstreamRejected) -> Sequence[Planned]:
        """A context-window or content-policy refusal switches, once, to that kind's own fallback list."""
        names = planned.policy.fallbacks_for(exc.error.kind)
        if not names or self._replan is None or run.reclassified:
            raise exc
        run.reclassified = True
        event(log, logging.WARNING, "classified_fallback", kind=exc.error.kind, target=planned.target.label)
        return self._replan(names)

    def _choose_key(
        self, provider: Provider, planned: Planned, used: set[str], force: bool
    ) -> tuple[KeyConfig, Breaker] | None:
        """A key by weight among those not resting and not broken, with its breaker (which has let this
        try through); None when no key is left."""
        now = self.clock()
        cooldowns = self.state.cooldowns
        pairs, weights = self._key_breakers(provider, planned)
        if len(pairs) == 1:  # the common single-key provider: no weighted draw
            key, breaker = pairs[0]
            if key.name in used:
                return None
            if force:
                return key, breaker
            if not cooldowns.is_cool(key.name, now) or not breaker.available(now):
                return None
            return (key, breaker) if breaker.allow(now) else None
        if not used and not force:  # a first try: draw among all the keys, then check only the one drawn
            key, breaker = pairs[weighted_index(weights, self._rng)]
            if cooldowns.is_cool(key.name, now) and breaker.available(now) and breaker.allow(now):
                return key, breaker
            # Drawn but resting or broken: draw again among the eligible keys. Overall each eligible key is
            # still chosen in proportion to its weight (w/W + (W - E)/W · w/E = w/E for eligible weight E).
        eligible = [
            (key, breaker)
            for key, breaker in pairs
            if key.name not in used and (force or (cooldowns.is_cool(key.name, now) and breaker.available(now)))
        ]
        while eligible:
            chosen = weighted_index([key.weight for key, _ in eligible], self._rng)
            key, breaker = eligible[chosen]
            if force or breaker.allow(now):
                return key, breaker
            del eligible[chosen]  # half-open and its probe slots are taken
        return None

    def _key_breakers(self, provider: Provider, planned: Planned) -> _KeyPairs:
        """The target's usable keys (model allow-lists applied) with their breakers, and the keys' weights,
        looked up once."""
        target = planned.target
        found = self._pairs.get(target.label)
        if found is None:
            if len(self._pairs) >= 4096:  # targets named per request make the set open-ended
                self._pairs.clear()
            pairs = [
                (key, self._breaker(planned, key))
                for key in provider.config.keys
                if key.models is None or target.model in key.models
            ]
            found = self._pairs[target.label] = (pairs, [key.weight for key, _ in pairs])
        return found

    def _forget(self, planned: Planned) -> None:
        target = planned.target
        self._pairs.pop(target.label, None)
        for key in self._providers[target.provider].config.keys:
            self.state.breakers.discard(target.provider, key.name, target.model)

    def _breaker(self, planned: Planned, key: KeyConfig) -> Breaker:
        return self.state.breakers.get(planned.target.provider, key.name, planned.target.model)

    async def _attempt(
        self,
        run: _Run,
        provider: Provider,
        planned: Planned,
        key: KeyConfig,
        breaker: Breaker,
        index: int,
        retries: int,
    ) -> Served | UpstreamError:
        target, started = planned.target, self.clock()
        label = target.label
        authorize = self._authorizers.get(target.provider)
        if self._track:
            self.state.stats.started(label)
        response: UpstreamResponse | None = None
        try:
            if authorize is not None:
                await authorize(key)  # a failed token fetch is this attempt's failure (UpstreamError)
            request = self._request(provider, planned, key, run)
            # The budget rides on the request: the transport clamps every wait to it (no extra timer).
            request.budget = self._attempt_budget(planned, run)
            response = await self._transport.send(request)
            if response.status >= 400:
                raise provider.classify(response.status, response.headers, await read_all(response))
            own = self._formats.get(target.provider)
            in_own = own is not None and run.operation in own  # chat and embeddings: no call at all
            fmt = speaks(provider, own, run.operation, target.model) if in_own else provider.format
            served = Served(target, key, response, run.attempts, planned.policy, fmt, index, retries)
            await self._complete(served, planned, run)
        except asyncio.CancelledError:
            await _close(response)
            breaker.release()
            if self._track:
                self.state.stats.finished(label)
            self._record(run, Attempt(target.provider, target.model, None, "cancelled", self._ms(started), key.name))
            raise
        except UpstreamError as exc:
            error: UpstreamError = exc
            if isinstance(exc, UpstreamTimeout) and self.clock() >= run.deadline - 0.001:
                run.deadline_hit = True
        else:
            ms = self._ms(started)
            self._record(run, Attempt(target.provider, target.model, response.status, "ok", ms, key.name))
            if run.stream:
                served.breaker = breaker  # the verdict comes when the stream ends (`stream_ended`)
            else:
                breaker.record_success(self.clock())
            if self._track:
                self.state.stats.observe(label, ms)
                served.on_close = partial(self.state.stats.finished, label)  # outstanding until closed
            return served
        await _close(response)
        if self._track:
            self.state.stats.finished(label)
        return self._failed(run, planned, key, error, started)

    async def _complete(self, served: Served, planned: Planned, run: _Run) -> None:
        if not run.stream:
            body = in_hand(served.response)
            served.body = body if body is not None else await read_all(served.response)
            served.usage = self._providers[planned.target.provider].inspect(run.operation, served.body)
            return
        first_token = planned.policy.timeouts.first_token or self._provider_first_token(planned)
        if first_token is None:
            await prefetch(served)
        else:
            try:
                async with asyncio.timeout(first_token):
                    await prefetch(served)
            except TimeoutError as exc:
                raise UpstreamTimeout(
                    f"no first token from {planned.target.label} within {first_token}s", phase="first_token"
                ) from exc
        if is_budgeted(response := served.response):
            response.lift_budget()  # from here the stream belongs to the client; idle timeouts still apply

    def _provider_first_token(self, planned: Planned) -> float | None:
        return self._providers[planned.target.provider].config.timeouts.first_token

    def _failed(
        self, run: _Run, planned: Planned, key: KeyConfig, error: UpstreamError, started: float
    ) -> UpstreamError:
        target, now = planned.target, self.clock()
        self._record(
            run, Attempt(target.provider, target.model, error.status, error.message, self._ms(started), key.name)
        )
        caller_error = not error.retryable and error.status not in _FAILOVER_4XX
        if _unknown_model(error) and target.label not in self._configured:
            self._forget(planned)  # an invented name: it must not hold a breaker (or count as a failure)
        elif not caller_error:
            self._breaker(planned, key).record_failure(now)
        rest = (  # a refusal of the model asked for is this request's, not the key's: no rest for everyone
            None
            if error.kind == "model_access"
            else self.state.cooldowns.on_failure(key.name, error.status, error.retry_after, now)
        )
        if rest is not None:
            level = logging.ERROR if error.status in (401, 403) else logging.WARNING
            event(
                log,
                level,
                "key_cooldown",
                target=target.label,
                key=key.name,
                status=error.status,
                seconds=round(rest, 3),
            )
        event(
            log,
            logging.WARNING,
            "attempt_failed",
            target=target.label,
            key=key.name,
            status=error.status,
            reason=f"{error.message} [{error.where}]" if error.where else error.message,
        )
        if caller_error:
            raise UpstreamRejected(error, run.attempts)
        return error

    def stream_ended(self, served: Served, failure: str | None) -> Attempt | None:
        """The verdict on a stream that reached the client. A failure after the first token counts against
        its target as one before it does (breaker, error rate), so the next requests go elsewhere; it is
        recorded as an attempt of its own (metrics, request log), which is returned."""
        breaker, served.breaker = served.breaker, None
        if breaker is None:
            return None  # not a stream, or already judged
        now = self.clock()
        if failure is None:
            breaker.record_success(now)
            return None
        breaker.record_failure(now)
        target, key = served.target, served.key.name
        attempt = Attempt(target.provider, target.model, None, failure, 0.0, key)
        served.attempts.append(attempt)
        event(log, logging.WARNING, "stream_failed", target=target.label, key=key, reason=failure)
        return attempt

    def _request(self, provider: Provider, planned: Planned, key: KeyConfig, run: _Run) -> UpstreamRequest:
        request = provider.build(run.operation, planned.target.model, run.body, key, run.source)
        stages = planned.policy.timeouts
        if stages.connect is not None or stages.headers is not None or stages.idle is not None:
            merged = stages.over(provider.config.timeouts)
            request.timeouts = Timeouts(connect=merged.connect, headers=merged.headers, read=merged.idle)
        return request

    def _attempt_budget(self, planned: Planned, run: _Run) -> float:
        remaining = max(0.0, run.deadline - self.clock())
        total = planned.policy.timeouts.total or self._providers[planned.target.provider].config.timeouts.total
        return remaining if total is None else min(total, remaining)

    async def _hedged(
        self, run: _Run, first: tuple[int, Planned], second: tuple[int, Planned], delay: float
    ) -> Served | None:
        """Start `first`; if it has not answered within `delay`, start `second` too. The first good answer
        wins and the other is cancelled (its connection closed, its attempt recorded as cancelled)."""
        primary = asyncio.create_task(self._target(run, *first))
        tasks: set[asyncio.Task[Served | None]] = {primary}
        try:
            done, _ = await asyncio.wait(tasks, timeout=min(delay, max(0.0, run.deadline - self.clock())))
            if done:
                result = primary.result()
                return result if result is not None else await self._target(run, *second)
            event(log, logging.INFO, "hedge_started", primary=first[1].target.label, hedge=second[1].target.label)
            tasks.add(asyncio.create_task(self._target(run, *second)))
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    served = task.result()
                    if served is not None:
                        return served
            return None
        finally:
            await _cancel_losers(tasks)

    async def _last_resort(self, run: _Run) -> Served | None:
        def last_failure(item: tuple[int, Planned]) -> float:
            provider = self._providers[item[1].target.provider]
            return min(self._breaker(item[1], key).opened_at for key in provider.config.keys)

        index, planned = min(run.skipped, key=last_failure)
        event(log, logging.WARNING, "last_resort", target=planned.target.label)
        return await self._target(run, index, planned, force=True)

    def _all_failed(self, run: _Run) -> AllAttemptsFailed:
        if run.ineligible and run.ineligible == len(run.attempts):  # no upstream call: the request's fault
            headline = f"No target of this route serves {run.operation}"
            if run.operation in run.needs:  # what the request uses needs a provider speaking that API upstream
                headline += f" in its own API, which this request needs (capability '{run.operation}')"
            return AllAttemptsFailed(run.attempts, status=400, headline=headline, code="unsupported_operation")
        statuses = [a.status for a in run.attempts if a.status is not None]
        if run.deadline_hit or self.clock() >= run.deadline:
            return AllAttemptsFailed(run.attempts, status=504, headline="The request deadline was reached")
        if statuses and all(s == 429 for s in statuses):
            return AllAttemptsFailed(run.attempts, status=429, headline="Every target is rate-limited")
        if statuses and all(s == 404 for s in statuses):  # e.g. a model no target's provider knows
            return AllAttemptsFailed(run.attempts, status=404, headline="No target knows this model")
        return AllAttemptsFailed(run.attempts, status=502)

    def _record(self, run: _Run, attempt: Attempt) -> None:
        run.attempts.append(attempt)

    def _skip(self, run: _Run, planned: Planned, reason: str) -> None:
        self._record(run, Attempt(planned.target.provider, planned.target.model, None, reason, 0))

    def _ms(self, started: float) -> float:
        return (self.clock() - started) * 1000.0


def _unknown_model(error: UpstreamError) -> bool:
    """The provider does not know the model (404; a 400 about the model, as Bedrock and some
    OpenAI-compatible servers say it)."""
    return error.status == 404 or (error.status == 400 and "model" in error.message.lower())


async def _cancel_losers(tasks: set[asyncio.Task[Served | None]]) -> None:
    losers = [task for task in tasks if not task.done()]
    for task in losers:
        task.cancel()
    for task in losers:
        try:
            late = await task
        except (asyncio.CancelledError, UpstreamError, UpstreamRejected):
            continue
        if late is not None:  # it finished in the same instant as the winner: release it
            await late.aclose()


async def _close(response: UpstreamResponse | None) -> None:
    if response is not None:
        await response.aclose()


def _log_breaker(name: str, old: str, new: str) -> None:
    level = logging.WARNING if new == "open" else logging.INFO
    event(log, level, "breaker_state", target=name, old=old, new=new)
