"""The `cache:` section: answers served again without asking a provider (`sidestep.plugins.cache`).

```yaml
cache:                          # present (even empty: `cache: {}`) turns the cache on
  ttl: 3600                     # seconds; a request may ask for its own with x-sidestep-cache-ttl (≤ max_ttl)
  max_entries: 10000
  max_bytes: 67108864           # answers' bytes held in memory
  scope: key                    # key | team | customer | global: who shares entries
  nondeterministic: false       # true: also cache temperature > 0 without a seed, and n > 1
  models: ["gpt-4o*", smart]    # only requests for these names (globs); default: every one
  backend: memory               # memory | redis
  redis: {url: "redis://127.0.0.1:6379/0", prefix: "sidestep:cache:", timeout: 0.25}
  semantic: {route: embed, models: [smart], threshold: 0.95, max_entries: 10000, max_bytes: 67108864}
  serve_stale: [smart]          # globs: when every target fails, answer from an expired entry (x-sidestep-cache: stale)
  stale_grace: 86400            # seconds an entry is kept past its TTL for serve_stale
  admin_key: env:CACHE_ADMIN    # turns on POST /sidestep/cache/purge (header x-sidestep-admin-key)
```
"""

from __future__ import annotations

from typing import Any

from sidestep.config.fields import (
    Ctx,
    as_bool,
    as_int,
    as_mapping,
    as_str,
    as_str_list,
    kind_of,
    positive,
    secret,
)
from sidestep.config.model import CACHE_SCOPES, CacheConfig

__all__ = ["parse_cache"]

_KEYS = {
    "enabled",
    "ttl",
    "max_ttl",
    "max_entries",
    "max_bytes",
    "max_entry_bytes",
    "scope",
    "nondeterministic",
    "models",
    "backend",
    "redis",
    "semantic",
    "serve_stale",
    "stale_grace",
    "admin_key",
}
_REDIS_KEYS = {"url", "prefix", "timeout"}
_SEMANTIC_KEYS = {"route", "models", "threshold", "max_entries", "max_bytes"}
_BACKENDS = ("memory", "redis")
_DEFAULT = CacheConfig()


def parse_cache(ctx: Ctx, value: Any) -> CacheConfig:
    """`value` is the section's content; None (no section) leaves the cache off."""
    if value is None:
        return _DEFAULT
    raw = as_mapping(ctx, value, "cache", _KEYS)
    scope = _choice(ctx, raw.get("scope", "key"), "cache.scope", CACHE_SCOPES)
    backend = _choice(ctx, raw.get("backend", "memory"), "cache.backend", _BACKENDS)
    redis = as_mapping(ctx, raw.get("redis", {}), "cache.redis", _REDIS_KEYS)
    url = as_str(ctx, redis.get("url", _DEFAULT.redis_url), "cache.redis.url")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ctx.fail("cache.redis.url", f"expected a redis://, rediss:// or unix:// URL, got {url!r}")
    ttl = positive(ctx, raw.get("ttl", _DEFAULT.ttl), "cache.ttl")
    max_ttl = positive(ctx, raw.get("max_ttl", max(ttl, _DEFAULT.max_ttl)), "cache.max_ttl")
    if max_ttl < ttl:
        raise ctx.fail("cache.max_ttl", f"must be at least cache.ttl ({ttl:g}), got {max_ttl:g}")
    models = raw.get("models")
    semantic = _semantic(ctx, raw["semantic"]) if raw.get("semantic") is not None else {}
    return CacheConfig(
        enabled=as_bool(ctx, raw.get("enabled", True), "cache.enabled"),
        ttl=ttl,
        max_ttl=max_ttl,
        max_entries=as_int(ctx, raw.get("max_entries", _DEFAULT.max_entries), "cache.max_entries", 1),
        max_bytes=as_int(ctx, raw.get("max_bytes", _DEFAULT.max_bytes), "cache.max_bytes", 1),
        max_entry_bytes=as_int(ctx, raw.get("max_entry_bytes", _DEFAULT.max_entry_bytes), "cache.max_entry_bytes", 1),
        scope=scope,
        nondeterministic=as_bool(ctx, raw.get("nondeterministic", False), "cache.nondeterministic"),
        models=tuple(as_str_list(ctx, models, "cache.models")) if models is not None else None,
        backend=backend,
        redis_url=url,
        redis_prefix=as_str(ctx, redis.get("prefix", _DEFAULT.redis_prefix), "cache.redis.prefix"),
        redis_timeout=positive(ctx, redis.get("timeout", _DEFAULT.redis_timeout), "cache.redis.timeout"),
        serve_stale=tuple(as_str_list(ctx, raw.get("serve_stale", []), "cache.serve_stale")),
        stale_grace=positive(ctx, raw.get("stale_grace", _DEFAULT.stale_grace), "cache.stale_grace"),
        admin_key=secret(ctx, raw["admin_key"], "cache.admin_key") if raw.get("admin_key") is not None else None,
        **semantic,
    )


def _semantic(ctx: Ctx, value: Any) -> dict[str, Any]:
    raw = as_mapping(ctx, value, "cache.semantic", _SEMANTIC_KEYS)
    for name in ("route", "models"):
        if name not in raw:
            what = "the embeddings route or model" if name == "route" else "the models that opt in (globs)"
            raise ctx.fail("cache.semantic", f"a semantic cache needs `{name}`: {what}")
    threshold = positive(ctx, raw.get("threshold", _DEFAULT.semantic_threshold), "cache.semantic.threshold")
    if threshold > 1:
        raise ctx.fail("cache.semantic.threshold", f"a cosine similarity is at most 1, got {threshold:g}")
    most = raw.get("max_entries", _DEFAULT.semantic_max_entries)
    most_bytes = raw.get("max_bytes", _DEFAULT.semantic_max_bytes)
    return {
        "semantic_route": as_str(ctx, raw["route"], "cache.semantic.route"),
        "semantic_models": tuple(as_str_list(ctx, raw["models"], "cache.semantic.models")),
        "semantic_threshold": threshold,
        "semantic_max_entries": as_int(ctx, most, "cache.semantic.max_entries", 1),
        "semantic_max_bytes": as_int(ctx, most_bytes, "cache.semantic.max_bytes", 1),
    }


def _choice(ctx: Ctx, value: Any, path: str, known: tuple[str, ...]) -> str:
    if value not in known:
        raise ctx.fail(path, f"expected one of {', '.join(known)}, got {kind_of(value)}")
    return str(value)
