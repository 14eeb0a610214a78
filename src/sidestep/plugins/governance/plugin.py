"""The governance plugin: who is calling, may they, and what did it cost them.

`pre` finds the virtual key (`Authorization: Bearer …` as OpenAI SDKs send it, `x-api-key` as Anthropic's do,
`x-goog-api-key` or `?key=` as Google's do; a boto3 client's SigV4 `Authorization` is no key: `_presented_key`),
asks `decide`, refuses in the client's format or counts the request against every scope the key belongs to
(itself, its team, its customer). `post` adds the tokens and the cost that the upstream reported. Every check
and count is in memory, O(1) per request. Rate limits hold per process; budget spend is per process too unless
`governance.store` names a SQLite file, which a background flush keeps shared across workers and restarts
(`SpendStore`).

Besides its hooks it authenticates callers from the head (before the body is decoded), narrows
`GET /v1/models` to a key's allow-list, serves `GET /sidestep/key`, starts and stops its spend store with
the server, takes over the counters of the instance a reload replaces, and exports its budgets to
`/metrics` (the capabilities of `sidestep.plugins.capabilities`).

A request admitted against a budget reserves its estimated cost (prompt bytes / 4 tokens in, its
declared output limit — wherever the client's format names it: `ClientFormat.output_limit` — or
`reserve_output_tokens` out, at the dearest price among its targets) until `post`
settles the real cost: admission checks spent + reserved, so a burst overshoots a budget by at most one
request's estimate plus what answers cost beyond their estimates, not by what every request in flight costs.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any
from urllib.parse import parse_qs

import msgspec

from sidestep.config.model import GovernanceConfig, RouteNode, VirtualKey
from sidestep.errors import ConfigError, Forbidden, LimitExceeded, SidestepError, Unauthorized
from sidestep.observers.metrics import labels
from sidestep.plugins.base import Exchange
from sidestep.plugins.estimate import tokens_of
from sidestep.plugins.governance.decide import ALLOW, Decision, decide, model_allowed
from sidestep.plugins.governance.limits import NO_SCOPES, Scope, Scopes, iso_utc, period_end
from sidestep.plugins.governance.store import SpendStore
from sidestep.pricing import Pricing
from sidestep.server.types import Endpoint, Request, Response

__all__ = ["Governance"]


class Governance:
    name = "governance"

    def __init__(
        self,
        config: GovernanceConfig,
        *,
        clock: Callable[[], float] = time.time,
        source: str = "<config>",
        routes: Mapping[str, RouteNode] | None = None,
    ) -> None:
        """`routes` (the config's) tell which targets a route name may reach: its reservation is priced
        at the dearest of them."""
        self._clock = clock
        self._keys = {key.secret.reveal(): key for key in config.keys}
        self.pricing = Pricing(config.pricing, routes)
        self._priced = bool(self.pricing)  # asked twice a request: a plain flag, not `Pricing.__bool__`
        self._reserve_output = config.reserve_output_tokens
        self._headers = config.rate_limit_headers
        teams = {name: Scope(f"team '{name}'", team.limits, f"team:{name}") for name, team in config.teams.items()}
        customers = {
            name: Scope(f"customer '{name}'", limits, f"customer:{name}") for name, limits in config.customers.items()
        }
        self._scopes: dict[str, Scopes] = {}  # key name → the scopes with limits it counts against
        for key in config.keys:
            scopes = [Scope(f"key '{key.name}'", key.limits, f"key:{key.name}")]
            if key.team is not None:
                scopes.append(teams[key.team])
            if key.customer is not None:
                scopes.append(customers[key.customer])
            self._scopes[key.name] = Scopes.of(tuple(scopes))
        self.wants_usage = any(scopes.tpm or scopes.budgets for scopes in self._scopes.values())
        # Every scope with a budget, once (a team's is shared by its keys): the store's and the metrics' list.
        self._budgeted = tuple({scope.ident: scope for s in self._scopes.values() for scope in s.budgets}.values())
        self.store = None
        if config.store is not None:
            try:
                self.store = SpendStore(config.store, self._budgeted, clock=clock)
                self.store.load()
            except sqlite3.Error as exc:
                reason = f"cannot use the spend store '{config.store}': {exc}"
                raise ConfigError(reason, source=source, path="governance.store") from exc

    def adopt(self, old: Any) -> None:
        """Carry the counters of a previous configuration's keys, teams and customers over (a reload):
        a scope keeps its minute windows, and its spend while its budget period is unchanged."""
        if not isinstance(old, Governance):
            return
        before = {scope.ident: scope for scopes in old._scopes.values() for scope in scopes.all}
        for scopes in self._scopes.values():
            for scope in scopes.all:
                previous = before.get(scope.ident)
                if previous is None:
                    continue
                scope.requests, scope.tokens = previous.requests, previous.tokens
                if previous.spend.period == scope.spend.period:
                    scope.spend = previous.spend
                else:  # requests in flight release what they hold here
                    scope.spend.reserved = previous.spend.reserved

    def _key_of(self, request: Request) -> tuple[str | None, VirtualKey | None]:
        """(what the request presents as its key, the virtual key it names if any)."""
        presented = _presented_key(request)
        return presented, self._keys.get(presented) if presented else None

    def start(self) -> None:
        """Background work on the running loop (flushing spend to the store)."""
        if self.store is not None:
            self.store.start()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def pre(self, exchange: Exchange) -> Response | None:
        key = exchange.principal  # the gateway's `authenticate`, before it read the body
        presented: str | None = "yes"
        if not isinstance(key, VirtualKey):
            presented, key = self._key_of(exchange.request)
        scopes = self._scopes[key.name] if key is not None else NO_SCOPES
        now = self._clock()
        decision = decide(key, bool(presented), exchange.models, scopes, now)
        if decision is not ALLOW:
            raise _refusal(decision)
        exchange.principal = key
        for scope in scopes.rpm:
            scope.requests.add(now, 1)
        if scopes.budgets and self._priced:
            exchange.reserved_usd = self._estimate(exchange)
            scopes.reserve(exchange.reserved_usd)
        if self._headers and (scopes.rpm or scopes.tpm):
            exchange.headers = _rate_headers(scopes, now)
        return None

    def _estimate(self, exchange: Exchange) -> float:
        """USD a request may cost at most, as far as can be told before it is sent."""
        price = self.pricing.ceiling(exchange.models)
        if price is None:
            return 0.0
        output = exchange.format.output_limit(exchange.body) or self._reserve_output  # where the client's API names it
        return (tokens_of(len(exchange.request.body)) * price.input + output * price.output) / 1_000_000

    def post(self, exchange: Exchange) -> None:
        key = exchange.principal
        if not isinstance(key, VirtualKey):
            return
        scopes = self._scopes.get(key.name, NO_SCOPES)  # a reload may have removed the key meanwhile
        if exchange.reserved_usd:
            scopes.release(exchange.reserved_usd)
            exchange.reserved_usd = 0.0
        usage = exchange.usage
        if usage is None:
            return
        cost = self.pricing.cost(exchange.provider, exchange.model, usage) if self._priced else None
        if cost is not None:
            exchange.cost_usd = cost
        now = self._clock()
        if scopes.tpm:
            tokens = usage.input + usage.output
            for scope in scopes.tpm:
                scope.tokens.add(now, tokens)
        if cost:
            for scope in scopes.budgets:
                scope.spend.add(now, cost)

    def authenticate(self, request: Request) -> VirtualKey:
        """The virtual key `request` presents, or the 401 refusal (no key, unknown, disabled or expired):
        what can be decided from the head alone, so the gateway asks before it reads the body."""
        presented, key = self._key_of(request)
        if key is None or not key.enabled or key.expires is not None:
            decision = decide(key, bool(presented), (), NO_SCOPES, self._clock())
            if key is None or decision is not ALLOW:  # decide never allows a missing key
                raise _refusal(decision)
        return key

    def allowed_models(self, request: Request) -> Callable[[str], bool] | None:
        """For a known key with a model allow-list, the test a model name must pass; else None (all)."""
        _, key = self._key_of(request)
        if key is None or key.models is None:
            return None
        return partial(model_allowed, key.models)

    def describe(self, request: Request) -> dict[str, Any]:
        """What the key `request` presents may do and has used: its models and, per scope, each limit with
        its current use (requests and tokens in the sliding minute, spend in the budget period)."""
        key = self.authenticate(request)
        now = self._clock()
        return {
            "key": key.name,
            "team": key.team,
            "customer": key.customer,
            "models": list(key.models) if key.models is not None else None,
            "limits": [_scope_state(scope, now) for scope in self._scopes[key.name].all],
        }

    def endpoints(self) -> dict[str, Endpoint]:
        return {"/sidestep/key": Endpoint("key_info", self._key_info)}

    async def _key_info(self, request: Request) -> Response:
        """The calling virtual key's limits and what it has used of them (`GET /sidestep/key`)."""
        return Response(200, msgspec.json.encode(self.describe(request)), [("content-type", "application/json")])

    def exposition(self) -> list[str]:
        """Spend and budget per key, team and customer with a budget, as Prometheus gauges."""
        spent = [
            "# HELP sidestep_budget_spent_usd Spend in the current budget period, per key, team or customer.",
            "# TYPE sidestep_budget_spent_usd gauge",
        ]
        limits = [
            "# HELP sidestep_budget_limit_usd The budget of each key, team or customer per period.",
            "# TYPE sidestep_budget_limit_usd gauge",
        ]
        for scope, period, used, limit in sorted(self.budgets()):
            pairs = labels(scope=scope, period=period)
            spent.append(f"sidestep_budget_spent_usd{{{pairs}}} {used!r}")
            limits.append(f"sidestep_budget_limit_usd{{{pairs}}} {limit!r}")
        return spent + limits

    def budgets(self) -> list[tuple[str, str, float, float]]:
        """(scope, period, spent, budget) for every key, team and customer with a budget (metrics)."""
        now = self._clock()
        return [
            (scope.ident, scope.limits.budget_period, scope.spend.spent(now), scope.limits.budget_usd or 0.0)
            for scope in self._budgeted
        ]


def _presented_key(request: Request) -> str | None:
    """`Authorization: Bearer <key>` (or a bare value), else `x-api-key`, `x-goog-api-key` or `?key=` (google-genai
    and Gemini's REST API). An AWS SigV4 `Authorization` (what boto3 signs every request with) is not a key and is
    not verified: such a caller sends its key as `x-api-key`, or as a Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`,
    which boto3 sends as a Bearer token)."""
    value = request.header("authorization")
    if value is not None and not value.startswith(_SIGV4):
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else value.strip()
    value = request.header("x-api-key") or request.header("x-goog-api-key")
    if value is None and "key=" in request.query:
        value = next(iter(parse_qs(request.query).get("key", ())), None)
    return value


_SIGV4 = "AWS4-HMAC-SHA256 "


def _rate_headers(scopes: Scopes, now: float) -> list[tuple[str, str]]:
    """OpenAI's rate-limit headers, for whichever of the key's scopes has the least room left, so clients
    can pace themselves."""
    headers = []
    if scopes.rpm:
        limit, left = _tightest(scopes.rpm, now, tokens=False)
        headers += [("x-ratelimit-limit-requests", limit), ("x-ratelimit-remaining-requests", left)]
    if scopes.tpm:
        limit, left = _tightest(scopes.tpm, now, tokens=True)
        headers += [("x-ratelimit-limit-tokens", limit), ("x-ratelimit-remaining-tokens", left)]
    return headers


def _tightest(scopes: tuple[Scope, ...], now: float, *, tokens: bool) -> tuple[str, str]:
    """(limit, room left) of the scope with the least room, as header values. A plain loop: this runs on
    every answer to a rate-limited key."""
    limit, left = 0, float("inf")
    for scope in scopes:
        cap = (scope.limits.tpm if tokens else scope.limits.rpm) or 0
        room = cap - (scope.tokens if tokens else scope.requests).estimate(now)
        if room < left:
            limit, left = cap, room
    return str(limit), str(int(left)) if left > 0 else "0"


def _scope_state(scope: Scope, now: float) -> dict[str, Any]:
    limits = scope.limits
    state: dict[str, Any] = {"scope": scope.ident}
    if limits.rpm is not None:
        state["rpm"] = {"limit": limits.rpm, "used": round(scope.requests.estimate(now), 2)}
    if limits.tpm is not None:
        state["tpm"] = {"limit": limits.tpm, "used": round(scope.tokens.estimate(now), 2)}
    if limits.budget_usd is not None:
        end = period_end(now, limits.budget_period)
        state["budget"] = {
            "usd": limits.budget_usd,
            "spent_usd": round(scope.spend.spent(now), 8),
            "reserved_usd": round(scope.spend.reserved, 8),  # held by its requests in flight
            "period": limits.budget_period,
            "resets_at": iso_utc(end) if end is not None else None,
        }
    return state


_LIMIT_KINDS = {  # decision code → (OpenAI error code, OpenAI error type)
    "rate_limit_exceeded": ("rate_limit_exceeded", "requests"),
    "tokens_exceeded": ("rate_limit_exceeded", "tokens"),
    "insufficient_quota": ("insufficient_quota", "insufficient_quota"),
}


def _refusal(decision: Decision) -> SidestepError:
    if decision.code == "invalid_api_key":
        return Unauthorized(decision.reason)
    if decision.code == "model_not_allowed":
        return Forbidden(decision.reason)
    code, type_ = _LIMIT_KINDS[decision.code]
    return LimitExceeded(decision.reason, code=code, type_=type_, retry_after=decision.retry_after)
