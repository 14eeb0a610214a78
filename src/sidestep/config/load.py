"""Build a `Config` from a YAML file or from the environment, with errors that say file, key and reason.

Validation is hand-written rather than delegated to a schema library because the messages are the
product here: `sidestep.yaml: routes.smart.fallback[1]: unknown provider 'gorq' (known: groq, openai)`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from sidestep.config.cache import parse_cache
from sidestep.config.fields import (
    Ctx,
    as_bool,
    as_int,
    as_list,
    as_mapping,
    as_opt_str,
    as_str,
    as_str_list,
    as_str_map,
    kind_of,
    nonneg,
    positive,
    secret,
    suggest,
)
from sidestep.config.governance import parse_governance
from sidestep.config.mcp import parse_mcp
from sidestep.config.model import (
    NO_POLICY,
    PROVIDER_TIMEOUTS,
    BreakerPolicy,
    Config,
    FallbackNode,
    KeyConfig,
    LoadBalanceNode,
    NodePolicy,
    ProviderConfig,
    ResilienceConfig,
    RetryPolicy,
    RouteNode,
    Secret,
    ServerConfig,
    StageTimeouts,
    TargetNode,
)
from sidestep.errors import ConfigError, ConfigErrors
from sidestep.providers.catalog import CATALOG, ProviderSpec
from sidestep.providers.registry import build_providers
from sidestep.routing.strategies import STRATEGIES

__all__ = ["config_from_env", "load_config", "parse_config", "read_yaml"]

_TOP_KEYS = {"server", "providers", "routes", "resilience", "governance", "cache", "mcp"}
_RESILIENCE_KEYS = {"breaker", "rate_limit_cooldown", "rejected_key_cooldown", "max_key_cooldown"}
_BREAKER_KEYS = {"failures", "error_rate", "min_requests", "window", "cooldown", "half_open_probes"}
_SERVER_KEYS = {
    "host",
    "port",
    "max_body_bytes",
    "request_timeout",
    "workers",
    "access_log",
    "request_log",
    "metrics",
    "metrics_key",
    "sse_keepalive",
    "drain_timeout",
}
_PROVIDER_KEYS = {
    "type",
    "base_url",
    "api_key",
    "keys",
    "headers",
    "timeouts",
    "models",
    "api_version",
    "lacks",
    "drop_fields",
    "serves",
}
RELAYED_OPERATIONS = ("completions", "rerank", "moderations", "images", "transcriptions", "speech")
CAPABILITIES = (
    "tools",
    "vision",
    "json_schema",
    "streaming",
    "embeddings",
    *RELAYED_OPERATIONS,  # operations not every API has: `lacks: [rerank]` takes a target out of one
    "responses",  # the Responses API upstream: `lacks: [responses]` has a model's Responses requests translated
)
SERVED_OPERATIONS = (*RELAYED_OPERATIONS, "responses")  # what `serves` may list
_NO_CAPABILITY: frozenset[str] = frozenset()
_NO_RESPONSES = frozenset({"responses"})  # what a provider without the Responses API upstream never has
_KEY_KEYS = {"value", "weight", "models"}
_TIMEOUT_KEYS = {"connect", "headers", "first_token", "idle", "read", "total"}
_POLICY_KEYS = {"retry", "timeouts", "hedge", "mid_stream", "keepalive", "deadline", "fallbacks_on"}
_ERROR_KINDS = {"context_window", "content_policy"}
_NODE_KEYS = {"fallback", "loadbalance", "target", "weight", "strategy"} | _POLICY_KEYS
_RETRY_KEYS = {"attempts", "backoff", "max_backoff", "on", "connection_errors"}


def load_config(
    path: str | Path, env: Mapping[str, str] | None = None, *, no_env: bool = False, warnings: list[str] | None = None
) -> Config:
    """Read and validate a YAML config file (see `parse_config`)."""
    return parse_config(read_yaml(path), source=str(path), env=env, no_env=no_env, warnings=warnings)


def read_yaml(path: str | Path) -> Any:
    """A config file's raw data; unreadable files and YAML syntax errors name the file (and line)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", source=source) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {where}{problem}", source=source) from exc
    return data if data is not None else {}


def parse_config(
    data: Any,
    *,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
    no_env: bool = False,
    warnings: list[str] | None = None,
) -> Config:
    """Validate raw config data. Every mistake is found in one pass: one is raised as a `ConfigError`,
    several as `ConfigErrors`. With `no_env`, an unset `env:` secret is a warning (added to `warnings`)
    and a placeholder stands in for it — a config can be checked without its secrets."""
    ctx = Ctx(source, os.environ if env is None else env, unset_env_ok=no_env)
    top = as_mapping(ctx, data, "", _TOP_KEYS)
    server = ctx.attempt(_server, ctx, top.get("server", {}))
    providers: dict[str, ProviderConfig] = {}
    for name, value in (ctx.attempt(as_mapping, ctx, top.get("providers", {}), "providers") or {}).items():
        provider = ctx.attempt(_provider, ctx, name, value, broken=f"provider:{name}")
        if provider is not None:
            providers[name] = provider
    routes: dict[str, RouteNode] = {}
    for name, value in (ctx.attempt(as_mapping, ctx, top.get("routes", {}), "routes") or {}).items():
        route = ctx.attempt(_named_route, ctx, name, value, providers)
        if route is not None:
            routes[name] = route
    resilience = ctx.attempt(_resilience, ctx, top.get("resilience", {}))
    governance = ctx.attempt(parse_governance, ctx, top.get("governance", {}))
    # `cache:` with nothing under it (YAML null) turns the cache on with its defaults, as `cache: {}` does.
    cache = ctx.attempt(parse_cache, ctx, top.get("cache") or {}) if "cache" in top else parse_cache(ctx, None)
    key_names = [key.name for key in governance.keys] if governance is not None else ()
    mcp = ctx.attempt(parse_mcp, ctx, top.get("mcp", {}), key_names)
    if warnings is not None:
        warnings.extend(ctx.warnings)
    if ctx.errors:
        raise ctx.errors[0] if len(ctx.errors) == 1 else ConfigErrors(ctx.errors)
    assert server is not None and resilience is not None and governance is not None  # no errors: all parsed
    assert cache is not None
    assert mcp is not None
    _check_adapters(providers, source)
    return Config(
        server=server,
        resilience=resilience,
        governance=governance,
        cache=cache,
        mcp=mcp,
        providers=providers,
        routes=routes,
        source=source,
    )


def _named_route(ctx: Ctx, name: str, value: Any, providers: Mapping[str, ProviderConfig]) -> RouteNode:
    if name in providers or f"provider:{name}" in ctx.broken:
        raise ctx.fail(f"routes.{name}", f"route name '{name}' clashes with a provider of the same name")
    return _route(ctx, value, f"routes.{name}", providers)


def _check_adapters(providers: Mapping[str, ProviderConfig], source: str) -> None:
    """Build each adapter once so its own checks (credentials files, regions, …) fail before serving."""
    build_providers(providers, source=source)


def config_from_env(env: Mapping[str, str] | None = None) -> Config:
    """No config file: register every catalog provider whose key variable (or URL variable) is set."""
    env = os.environ if env is None else env
    providers: dict[str, ProviderConfig] = {}
    for spec in CATALOG.values():
        key_var = next((var for var in spec.key_env if env.get(var)), None)
        if key_var is None and not (spec.url_env and env.get(spec.url_env) and not spec.key_required):
            continue
        keys = (KeyConfig(Secret(env[key_var], key_var), name=f"{spec.name}#0"),) if key_var else ()
        base_url = _default_base_url(spec, env)
        if not base_url:
            continue  # azure without an endpoint cannot be used
        candidate = ProviderConfig(spec.name, spec.name, base_url, keys or (KeyConfig(None),))
        if _usable(candidate):
            providers[spec.name] = candidate
    return Config(providers=providers, source="<environment>")


def _usable(config: ProviderConfig) -> bool:
    """Whether the adapter accepts what the environment gave (Azure with an endpoint but no key: no)."""
    try:
        build_providers({config.name: config}, source="<environment>")
    except ConfigError:
        return False
    return True


def _default_base_url(spec: ProviderSpec, env: Mapping[str, str]) -> str:
    if spec.url_env and env.get(spec.url_env):
        return env[spec.url_env].rstrip("/")
    return spec.base_url


# -- sections ---------------------------------------------------------------------------------------


def _server(ctx: Ctx, value: Any) -> ServerConfig:
    raw = as_mapping(ctx, value, "server", _SERVER_KEYS)
    d = ServerConfig()

    def get(name: str, check: Callable[..., Any], *bounds: Any) -> Any:
        """Each setting on its own, so that one run reports every wrong one (the default stands in)."""
        if name not in raw:
            return getattr(d, name)
        checked = ctx.attempt(check, ctx, raw[name], f"server.{name}", *bounds)
        return getattr(d, name) if checked is None else checked

    return ServerConfig(
        host=get("host", as_str),
        port=get("port", as_int, 0, 65535),
        max_body_bytes=get("max_body_bytes", as_int, 1),
        request_timeout=get("request_timeout", positive),
        workers=get("workers", as_int, 1, 256),
        access_log=get("access_log", _log_target),
        request_log=get("request_log", _log_target),
        metrics=get("metrics", as_bool),
        metrics_key=get("metrics_key", secret),
        sse_keepalive=get("sse_keepalive", nonneg),
        drain_timeout=get("drain_timeout", nonneg),
    )


def _log_target(ctx: Ctx, value: Any, path: str) -> str | None:
    """`true` → stderr, `false`/absent → off, a string → that file (appended to)."""
    if value is None or value is False:
        return None
    if value is True:
        return "stderr"
    return as_str(ctx, value, path)


def _resilience(ctx: Ctx, value: Any) -> ResilienceConfig:
    raw = as_mapping(ctx, value, "resilience", _RESILIENCE_KEYS)
    base = ResilienceConfig()
    breaker = as_mapping(ctx, raw.get("breaker", {}), "resilience.breaker", _BREAKER_KEYS)
    policy, path = base.breaker, "resilience.breaker"
    error_rate = positive(ctx, breaker.get("error_rate", policy.error_rate), f"{path}.error_rate")
    if error_rate > 1:
        raise ctx.fail(f"{path}.error_rate", f"expected a fraction in (0, 1], got {error_rate}")
    return ResilienceConfig(
        breaker=BreakerPolicy(
            failure_threshold=as_int(ctx, breaker.get("failures", policy.failure_threshold), f"{path}.failures", 1),
            error_rate=error_rate,
            min_requests=as_int(ctx, breaker.get("min_requests", policy.min_requests), f"{path}.min_requests", 1),
            window=positive(ctx, breaker.get("window", policy.window), f"{path}.window"),
            cooldown=positive(ctx, breaker.get("cooldown", policy.cooldown), f"{path}.cooldown"),
            half_open_probes=as_int(
                ctx, breaker.get("half_open_probes", policy.half_open_probes), f"{path}.half_open_probes", 1
            ),
        ),
        rate_limit_cooldown=positive(
            ctx, raw.get("rate_limit_cooldown", base.rate_limit_cooldown), "resilience.rate_limit_cooldown"
        ),
        rejected_key_cooldown=positive(
            ctx, raw.get("rejected_key_cooldown", base.rejected_key_cooldown), "resilience.rejected_key_cooldown"
        ),
        max_key_cooldown=positive(
            ctx, raw.get("max_key_cooldown", base.max_key_cooldown), "resilience.max_key_cooldown"
        ),
    )


def _provider(ctx: Ctx, name: str, value: Any) -> ProviderConfig:
    path = f"providers.{name}"
    raw = as_mapping(ctx, value if value is not None else {}, path)
    type_name = as_str(ctx, raw.get("type", name), f"{path}.type")
    spec = CATALOG.get(type_name)
    if spec is None:
        known = ", ".join(sorted(CATALOG))
        where = f"{path}.type" if "type" in raw else path
        hint = suggest(type_name, CATALOG)
        raise ctx.fail(where, f"unknown provider type '{type_name}'{hint} (known: {known}); set `type:` to one of them")
    as_mapping(ctx, raw, path, _PROVIDER_KEYS | set(spec.settings))
    base_url = as_str(ctx, raw["base_url"], f"{path}.base_url") if "base_url" in raw else None
    base_url = (base_url or _default_base_url(spec, ctx.env)).rstrip("/")
    if not base_url:
        raise ctx.fail(f"{path}.base_url", f"provider type '{type_name}' has no default base_url; set one")
    if not base_url.startswith(("http://", "https://")):
        raise ctx.fail(f"{path}.base_url", f"must start with http:// or https://, got '{base_url}'")
    keys = _keys(ctx, raw, path, spec, name)
    if "drop_fields" in raw and not spec.openai_compatible:
        raise ctx.fail(
            f"{path}.drop_fields", f"only OpenAI-compatible providers take it ('{type_name}' speaks {spec.adapter})"
        )
    serves = _serves(ctx, raw, path, spec) if "serves" in raw else None
    return ProviderConfig(
        name=name,
        type=type_name,
        base_url=base_url,
        keys=keys,
        headers=tuple(as_str_map(ctx, raw.get("headers", {}), f"{path}.headers").items()),
        timeouts=_timeouts(ctx, raw.get("timeouts", {}), f"{path}.timeouts").over(PROVIDER_TIMEOUTS),
        models=tuple(as_str_list(ctx, raw.get("models", []), f"{path}.models")),
        api_version=as_opt_str(ctx, raw.get("api_version", spec.default_api_version), f"{path}.api_version"),
        lacks=_lacks(ctx, raw.get("lacks"), f"{path}.lacks", spec.lacks),
        drop_fields=tuple(as_str_list(ctx, raw.get("drop_fields", []), f"{path}.drop_fields")),
        settings=_settings(ctx, raw, path, spec),
        serves=serves,
        never=_NO_CAPABILITY if "responses" in (spec.serves if serves is None else serves) else _NO_RESPONSES,
    )


def _serves(ctx: Ctx, raw: dict[str, Any], path: str, spec: ProviderSpec) -> frozenset[str]:
    """`serves: [rerank]`: the optional operations an OpenAI-compatible server has (the relayed-only ones, the
    legacy completions, the Responses API upstream), in place of its type's."""
    if not spec.openai_compatible:
        raise ctx.fail(
            f"{path}.serves", f"only OpenAI-compatible providers take it ('{spec.name}' speaks {spec.adapter})"
        )
    names = as_str_list(ctx, raw["serves"], f"{path}.serves")
    for name in names:
        if name not in SERVED_OPERATIONS:
            known = ", ".join(SERVED_OPERATIONS)
            raise ctx.fail(f"{path}.serves", f"unknown operation '{name}'{suggest(name, SERVED_OPERATIONS)} ({known})")
    return frozenset(names)


def _settings(ctx: Ctx, raw: dict[str, Any], path: str, spec: ProviderSpec) -> tuple[tuple[str, str | Secret], ...]:
    """Adapter-specific keys: strings (numbers allowed), `env:VAR` resolved; secret ones kept as `Secret`."""
    out: list[tuple[str, str | Secret]] = []
    for name in spec.settings:
        if name not in raw:
            continue
        value = raw[name]
        where = f"{path}.{name}"
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if name in spec.secret_settings:
            out.append((name, secret(ctx, value, where)))
        else:
            text = as_str(ctx, value, where)
            out.append((name, secret(ctx, text, where).reveal() if text.startswith("env:") else text))
    return tuple(out)


def _lacks(ctx: Ctx, value: Any, path: str, default: tuple[str, ...]) -> tuple[tuple[str, frozenset[str]], ...]:
    """`lacks: [vision]` for every model, or `lacks: {"*": [vision], "small-*": [tools]}` per model glob."""
    if value is None:
        return (("*", frozenset(default)),) if default else ()
    items = value.items() if isinstance(value, dict) else [("*", value)]
    out = []
    for glob, names in items:
        where = path if not isinstance(value, dict) else f"{path}.{glob}"
        listed = as_str_list(ctx, names, where)
        unknown = [n for n in listed if n not in CAPABILITIES]
        if unknown:
            hint = suggest(unknown[0], CAPABILITIES)
            raise ctx.fail(where, f"unknown capability '{unknown[0]}'{hint} (known: {', '.join(CAPABILITIES)})")
        out.append((str(glob), frozenset(listed)))
    return tuple(out)


def _keys(ctx: Ctx, raw: dict[str, Any], path: str, spec: ProviderSpec, name: str) -> tuple[KeyConfig, ...]:
    if "api_key" in raw and "keys" in raw:
        raise ctx.fail(path, "set either `api_key` or `keys`, not both")
    if "api_key" in raw:
        return (KeyConfig(secret(ctx, raw["api_key"], f"{path}.api_key"), name=f"{name}#0"),)
    if "keys" in raw:
        items = as_list(ctx, raw["keys"], f"{path}.keys")
        if not items:
            raise ctx.fail(f"{path}.keys", "must list at least one key")
        return tuple(_key(ctx, item, f"{path}.keys[{i}]", f"{name}#{i}") for i, item in enumerate(items))
    env_var = next((var for var in spec.key_env if ctx.env.get(var)), None)
    if env_var is not None:
        return (KeyConfig(Secret(ctx.env[env_var], env_var), name=f"{name}#0"),)
    if spec.key_required:
        hint = f" or export {spec.key_env[0]}" if spec.key_env else ""
        if not (ctx.unset_env_ok and spec.key_env):
            raise ctx.fail(path, f"no API key: set `api_key: env:VAR` or `keys:`{hint}")
        ctx.warn(path, f"no API key: {spec.key_env[0]} is not set (not needed with --no-env)")
        return (KeyConfig(Secret(f"unset-env-{spec.key_env[0]}", spec.key_env[0]), name=f"{name}#0"),)
    return (KeyConfig(None, name=f"{name}#0"),)


def _key(ctx: Ctx, item: Any, path: str, label: str) -> KeyConfig:
    if isinstance(item, str):
        return KeyConfig(secret(ctx, item, path), name=label)
    raw = as_mapping(ctx, item, path, _KEY_KEYS)
    if "value" not in raw:
        raise ctx.fail(path, "a key needs `value` (a literal or env:VAR)")
    models = raw.get("models")
    return KeyConfig(
        secret=secret(ctx, raw["value"], f"{path}.value"),
        weight=positive(ctx, raw.get("weight", 1), f"{path}.weight"),
        models=frozenset(as_str_list(ctx, models, f"{path}.models")) if models is not None else None,
        name=label,
    )


def _timeouts(ctx: Ctx, value: Any, path: str) -> StageTimeouts:
    raw = as_mapping(ctx, value, path, _TIMEOUT_KEYS)
    if "read" in raw and "idle" in raw:
        raise ctx.fail(path, "`read` is another name for `idle`; set one of them")

    def opt(name: str) -> float | None:
        return positive(ctx, raw[name], f"{path}.{name}") if name in raw else None

    return StageTimeouts(
        connect=opt("connect"),
        headers=opt("headers"),
        first_token=opt("first_token"),
        idle=opt("idle") if "idle" in raw else opt("read"),
        total=opt("total"),
    )


def _policy(ctx: Ctx, raw: dict[str, Any], path: str) -> NodePolicy:
    if not any(key in raw for key in _POLICY_KEYS):
        return NO_POLICY
    mid_stream = raw.get("mid_stream")
    if mid_stream is not None and mid_stream not in ("fail", "continue"):
        raise ctx.fail(f"{path}.mid_stream", f"expected 'fail' or 'continue', got {kind_of(mid_stream)}")
    hedge = raw.get("hedge")
    if isinstance(hedge, dict):
        hedge = as_mapping(ctx, hedge, f"{path}.hedge", {"delay"}).get("delay")
        if hedge is None:
            raise ctx.fail(f"{path}.hedge", "a hedge needs `delay` (seconds)")

    def opt(name: str, value: Any) -> float | None:
        return None if value is None else positive(ctx, value, f"{path}.{name}")

    return NodePolicy(
        retry=_retry(ctx, raw["retry"], f"{path}.retry") if "retry" in raw else None,
        timeouts=_timeouts(ctx, raw.get("timeouts", {}), f"{path}.timeouts"),
        hedge_delay=opt("hedge", hedge),
        mid_stream=mid_stream,
        keepalive=opt("keepalive", raw.get("keepalive")),
        deadline=opt("deadline", raw.get("deadline")),
        fallbacks_on=_fallbacks_on(ctx, raw.get("fallbacks_on"), f"{path}.fallbacks_on"),
    )


def _fallbacks_on(ctx: Ctx, value: Any, path: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`{context_window: [names], content_policy: [names]}`; names are targets or routes, checked per request."""
    if value is None:
        return ()
    raw = as_mapping(ctx, value, path, _ERROR_KINDS)
    out = []
    for kind, names in raw.items():
        items = as_str_list(ctx, names, f"{path}.{kind}")
        if not items:
            raise ctx.fail(f"{path}.{kind}", "must list at least one target or route")
        out.append((kind, tuple(items)))
    return tuple(out)


def _retry(ctx: Ctx, value: Any, path: str) -> RetryPolicy:
    if isinstance(value, int) and not isinstance(value, bool):
        return RetryPolicy(attempts=as_int(ctx, value, path, low=1, high=20))
    raw = as_mapping(ctx, value, path, _RETRY_KEYS)
    base = RetryPolicy()
    statuses = raw.get("on")
    if statuses is not None:
        items = as_list(ctx, statuses, f"{path}.on")
        statuses = frozenset(as_int(ctx, v, f"{path}.on[{i}]", low=400, high=599) for i, v in enumerate(items))
    return RetryPolicy(
        attempts=as_int(ctx, raw.get("attempts", 2), f"{path}.attempts", low=1, high=20),
        base_backoff=positive(ctx, raw.get("backoff", base.base_backoff), f"{path}.backoff"),
        max_backoff=positive(ctx, raw.get("max_backoff", base.max_backoff), f"{path}.max_backoff"),
        retry_on=statuses if statuses is not None else base.retry_on,
        retry_connection_errors=as_bool(ctx, raw.get("connection_errors", True), f"{path}.connection_errors"),
    )


# -- routes -----------------------------------------------------------------------------------------


def _route(ctx: Ctx, value: Any, path: str, providers: Mapping[str, ProviderConfig]) -> RouteNode:
    if isinstance(value, list):  # shorthand: a list is an ordered fallback
        return FallbackNode(_children(ctx, value, path, providers))
    return _node(ctx, value, path, providers)


def _node(ctx: Ctx, value: Any, path: str, providers: Mapping[str, ProviderConfig]) -> RouteNode:
    if isinstance(value, str):
        return _target(ctx, value, path, providers, 1.0, NO_POLICY)
    raw = as_mapping(ctx, value, path, _NODE_KEYS)
    weight = positive(ctx, raw.get("weight", 1), f"{path}.weight")
    kinds = [k for k in ("fallback", "loadbalance", "target") if k in raw]
    if len(kinds) != 1:
        raise ctx.fail(path, "a route node needs exactly one of `target`, `fallback`, `loadbalance`")
    kind = kinds[0]
    policy = _policy(ctx, raw, path)
    if "strategy" in raw and kind != "loadbalance":
        raise ctx.fail(f"{path}.strategy", "only a `loadbalance` node has a strategy")
    if kind == "target":
        return _target(ctx, raw["target"], f"{path}.target", providers, weight, policy)
    children = _children(ctx, raw[kind], f"{path}.{kind}", providers)
    if kind == "fallback":
        return FallbackNode(children, weight, policy)
    strategy = raw.get("strategy", "weighted")
    if strategy not in STRATEGIES:
        hint = suggest(strategy, STRATEGIES) if isinstance(strategy, str) else ""
        known = ", ".join(STRATEGIES)
        raise ctx.fail(f"{path}.strategy", f"unknown strategy {kind_of(strategy)}{hint} (known: {known})")
    return LoadBalanceNode(children, weight, policy, strategy)


def _children(ctx: Ctx, value: Any, path: str, providers: Mapping[str, ProviderConfig]) -> tuple[RouteNode, ...]:
    items = as_list(ctx, value, path)
    if not items:
        raise ctx.fail(path, "must list at least one target")
    return tuple(_node(ctx, item, f"{path}[{i}]", providers) for i, item in enumerate(items))


def _target(
    ctx: Ctx, value: Any, path: str, providers: Mapping[str, ProviderConfig], weight: float, policy: NodePolicy
) -> TargetNode:
    text = as_str(ctx, value, path)
    provider, sep, model = text.partition("/")
    if not sep or not provider or not model:
        raise ctx.fail(path, f"a target is written provider/model, got '{text}'")
    if provider not in providers and f"provider:{provider}" not in ctx.broken:  # a broken one is reported already
        names = set(providers) | {b.partition(":")[2] for b in ctx.broken if b.startswith("provider:")}
        known = ", ".join(sorted(names)) or "none configured"
        raise ctx.fail(path, f"unknown provider '{provider}'{suggest(provider, names)} (known: {known})")
    return TargetNode(provider, model, weight, policy)
