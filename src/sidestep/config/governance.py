"""The `governance:` section: virtual keys, their teams and customers, limits and prices.

```yaml
governance:
  pricing:                      # USD per million tokens; "provider/model" wins over a bare model name
    gpt-4o-mini: {input: 0.15, output: 0.60}
  customers:
    acme: {budget_usd: 100, budget_period: monthly}
  teams:
    research: {customer: acme, rpm: 600, tpm: 200000}
  keys:
    alice: {key: env:ALICE_KEY, team: research, models: ["gpt-4o*", smart], rpm: 60, budget_usd: 5}
```
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sidestep.config.fields import (
    Ctx,
    as_bool,
    as_int,
    as_mapping,
    as_opt_str,
    as_str_list,
    kind_of,
    nonneg,
    secret,
    suggest,
)
from sidestep.config.model import BUDGET_PERIODS, NO_LIMITS, GovernanceConfig, Limits, Price, TeamConfig, VirtualKey

__all__ = ["parse_governance"]

_TOP_KEYS = {"keys", "teams", "customers", "pricing", "store", "rate_limit_headers", "reserve_output_tokens"}
_LIMIT_KEYS = {"rpm", "tpm", "budget_usd", "budget_period"}
_TEAM_KEYS = _LIMIT_KEYS | {"customer"}
_KEY_KEYS = _LIMIT_KEYS | {"key", "team", "customer", "models", "enabled", "expires"}
_PRICE_KEYS = ("input", "output")
_PRICE_FIELDS = {"input", "output", "per_unit"}
_T = TypeVar("_T")


def parse_governance(ctx: Ctx, value: Any) -> GovernanceConfig:
    raw = as_mapping(ctx, value, "governance", _TOP_KEYS)
    # Entry by entry, so that one run reports every mistake; a broken entry is not "unknown" where it is named.
    customers = _entries(
        ctx, raw, "customers", lambda name, item: _limits(ctx, item, f"governance.customers.{name}", _LIMIT_KEYS)
    )
    teams = _entries(ctx, raw, "teams", lambda name, item: _team(ctx, name, item, customers))
    keys = tuple(_entries(ctx, raw, "keys", lambda name, item: _key(ctx, name, item, teams, customers)).values())
    seen: dict[str, str] = {}
    for key in keys:
        other = seen.setdefault(key.secret.reveal(), key.name)
        if other != key.name:
            raise ctx.fail(f"governance.keys.{key.name}.key", f"the same key value as governance.keys.{other}")
    pricing = {
        name: _price(ctx, item, f"governance.pricing.{name}")
        for name, item in as_mapping(ctx, raw.get("pricing", {}), "governance.pricing").items()
    }
    store = as_opt_str(ctx, raw.get("store"), "governance.store")
    if store is not None and "://" in store:
        raise ctx.fail("governance.store", f"expected a SQLite file path, got {store!r} (other stores: not yet)")
    headers = as_bool(ctx, raw.get("rate_limit_headers", False), "governance.rate_limit_headers")
    reserve = as_int(ctx, raw.get("reserve_output_tokens", 1024), "governance.reserve_output_tokens", 0)
    return GovernanceConfig(
        keys=keys,
        teams=teams,
        customers=customers,
        pricing=pricing,
        store=store,
        rate_limit_headers=headers,
        reserve_output_tokens=reserve,
    )


def _entries(ctx: Ctx, raw: Mapping[str, Any], section: str, parse: Callable[[str, Any], _T]) -> dict[str, _T]:
    entries = {}
    for name, item in as_mapping(ctx, raw.get(section, {}), f"governance.{section}").items():
        parsed = ctx.attempt(parse, name, item, broken=f"{section[:-1]}:{name}")
        if parsed is not None:
            entries[name] = parsed
    return entries


def _limits(ctx: Ctx, value: Any, path: str, allowed: set[str]) -> Limits:
    raw = as_mapping(ctx, value, path, allowed)
    period = raw.get("budget_period", "monthly")
    if period not in BUDGET_PERIODS:
        known = ", ".join(BUDGET_PERIODS)
        raise ctx.fail(f"{path}.budget_period", f"expected one of {known}, got {kind_of(period)}")
    if "budget_period" in raw and "budget_usd" not in raw:
        raise ctx.fail(f"{path}.budget_period", "a budget period needs `budget_usd`")
    limits = Limits(
        rpm=as_int(ctx, raw["rpm"], f"{path}.rpm", low=1) if "rpm" in raw else None,
        tpm=as_int(ctx, raw["tpm"], f"{path}.tpm", low=1) if "tpm" in raw else None,
        budget_usd=nonneg(ctx, raw["budget_usd"], f"{path}.budget_usd") if "budget_usd" in raw else None,
        budget_period=period,
    )
    return limits if limits.any else NO_LIMITS


def _team(ctx: Ctx, name: str, value: Any, customers: Mapping[str, Limits]) -> TeamConfig:
    path = f"governance.teams.{name}"
    raw = as_mapping(ctx, value, path, _TEAM_KEYS)
    customer = _ref(ctx, raw.get("customer"), f"{path}.customer", customers, "customer")
    return TeamConfig(name, _limits(ctx, _only(raw, _LIMIT_KEYS), path, _LIMIT_KEYS), customer)


def _key(
    ctx: Ctx, name: str, value: Any, teams: Mapping[str, TeamConfig], customers: Mapping[str, Limits]
) -> VirtualKey:
    path = f"governance.keys.{name}"
    raw = as_mapping(ctx, value, path, _KEY_KEYS)
    if "key" not in raw:
        raise ctx.fail(path, "a virtual key needs `key` (a literal or env:VAR)")
    team = _ref(ctx, raw.get("team"), f"{path}.team", teams, "team")
    customer = _ref(ctx, raw.get("customer"), f"{path}.customer", customers, "customer")
    team_customer = teams[team].customer if team is not None and team in teams else None
    if customer is not None and team_customer is not None and customer != team_customer:
        raise ctx.fail(f"{path}.customer", f"'{customer}' differs from its team's customer '{team_customer}'")
    models = raw.get("models")
    return VirtualKey(
        name=name,
        secret=secret(ctx, raw["key"], f"{path}.key"),
        team=team,
        customer=customer or team_customer,
        models=tuple(as_str_list(ctx, models, f"{path}.models")) if models is not None else None,
        limits=_limits(ctx, _only(raw, _LIMIT_KEYS), path, _LIMIT_KEYS),
        enabled=as_bool(ctx, raw.get("enabled", True), f"{path}.enabled"),
        expires=_expiry(ctx, raw.get("expires"), f"{path}.expires"),
    )


def _expiry(ctx: Ctx, value: Any, path: str) -> float | None:
    """A date (the key works through that day, UTC) or a date-time with its zone (YAML reads both unquoted)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = (
                dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                if "T" in value
                else dt.date.fromisoformat(value)
            )
        except ValueError:
            raise ctx.fail(path, f"expected a date (2026-12-31) or a date-time with zone, got {value!r}") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ctx.fail(path, "a date-time needs its zone (…Z or …+01:00)")
        return value.timestamp()
    if isinstance(value, dt.date):
        return float(calendar.timegm((value + dt.timedelta(days=1)).timetuple()))
    raise ctx.fail(path, f"expected a date or a date-time, got {kind_of(value)}")


def _ref(ctx: Ctx, value: Any, path: str, known: Mapping[str, object], what: str) -> str | None:
    name = as_opt_str(ctx, value, path)
    if name is not None and name not in known and f"{what}:{name}" not in ctx.broken:
        listed = ", ".join(sorted(known)) or f"none defined under governance.{what}s"
        raise ctx.fail(path, f"unknown {what} '{name}'{suggest(name, known)} (known: {listed})")
    return name


def _price(ctx: Ctx, value: Any, path: str) -> Price:
    """USD per million input and output tokens; `per_unit` (USD per image, search unit or audio second, for the
    relayed-only APIs that bill by unit) may stand alone."""
    raw = as_mapping(ctx, value, path, _PRICE_FIELDS)
    per_unit = nonneg(ctx, raw["per_unit"], f"{path}.per_unit") if "per_unit" in raw else 0.0
    for name in _PRICE_KEYS:
        if name not in raw and "per_unit" not in raw:
            raise ctx.fail(path, f"a price needs `{name}` (USD per million tokens), or `per_unit`")
    return Price(
        input=nonneg(ctx, raw.get("input", 0), f"{path}.input"),
        output=nonneg(ctx, raw.get("output", 0), f"{path}.output"),
        per_unit=per_unit,
    )


def _only(raw: Mapping[str, Any], names: set[str]) -> dict[str, Any]:
    return {key: value for key, value in raw.items() if key in names}
