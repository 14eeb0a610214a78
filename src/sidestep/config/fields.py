"""Validation primitives for config sections: each checks one value and, when it is wrong, raises a
`ConfigError` naming the source file, the key path and the reason.

A parse goes on past a mistake: sections and entries are checked through `Ctx.attempt`, which records
the error and lets the next entry be checked, and unknown keys are recorded, not raised, so one run
reports every mistake (`Ctx.errors`). Names that failed (`Ctx.broken`) are not reported again where
they are referred to. Misspelt names get a "did you mean" (`suggest`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from sidestep.config.model import Secret
from sidestep.errors import ConfigError

__all__ = [
    "Ctx",
    "as_bool",
    "as_int",
    "as_list",
    "as_mapping",
    "as_opt_str",
    "as_str",
    "as_str_list",
    "as_str_map",
    "kind_of",
    "nonneg",
    "positive",
    "secret",
    "suggest",
]

_T = TypeVar("_T")


class Ctx:
    """Carries the source name and environment through validation so every error can name both."""

    def __init__(self, source: str, env: Mapping[str, str], *, unset_env_ok: bool = False) -> None:
        self.source = source
        self.env = env
        self.unset_env_ok = unset_env_ok  # `check --no-env`: an unset `env:` secret is a warning
        self.errors: list[ConfigError] = []
        self.warnings: list[str] = []
        self.broken: set[str] = set()  # "provider:NAME", "team:NAME" …: failed, so not "unknown" elsewhere

    def fail(self, path: str, reason: str) -> ConfigError:
        return ConfigError(reason, source=self.source, path=path)

    def attempt(self, check: Callable[..., _T], *args: Any, broken: str | None = None) -> _T | None:
        """`check(*args)`, or None when it raised a `ConfigError` — recorded so that parsing goes on."""
        try:
            return check(*args)
        except ConfigError as exc:
            self.errors.append(exc)
            if broken is not None:
                self.broken.add(broken)
            return None

    def warn(self, path: str, reason: str) -> None:
        self.warnings.append(f"{self.source}: {path}: {reason}")


def suggest(word: str, known: Collection[str]) -> str:
    """ " — did you mean 'x'?" for the closest known name, or nothing when none is close."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def secret(ctx: Ctx, value: Any, path: str) -> Secret:
    if isinstance(value, int | float) and not isinstance(value, bool):  # YAML read a numeric key: never echo it
        raise ctx.fail(path, f"expected a non-empty string, got a {type(value).__name__} (not shown: it is a secret)")
    text = as_str(ctx, value, path)
    if text.startswith("env:"):
        var = text[4:]
        if not ctx.env.get(var):
            if not ctx.unset_env_ok:
                raise ctx.fail(path, f"environment variable {var} is not set")
            ctx.warn(path, f"environment variable {var} is not set (not needed with --no-env)")
            return Secret(f"unset-env-{var}", var)  # distinct per variable: equal only when the same one
        return Secret(ctx.env[var], var)
    return Secret(text, path)


def as_mapping(ctx: Ctx, value: Any, path: str, allowed: set[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        # A string where a mapping belongs is often a key written as its value alone: never echo it.
        got = "a string (not shown: it may be a secret)" if isinstance(value, str) else kind_of(value)
        raise ctx.fail(path or "<top>", f"expected a mapping, got {got}")
    for key in value:
        if not isinstance(key, str):
            raise ctx.fail(path or "<top>", f"keys must be strings, got {key!r}")
        if allowed is not None and key not in allowed:  # recorded, not raised: the other keys are checked too
            where = f"{path}.{key}" if path else key
            hint = suggest(key, allowed)
            ctx.errors.append(ctx.fail(where, f"unknown key{hint} (allowed: {', '.join(sorted(allowed))})"))
    return value


def as_list(ctx: Ctx, value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ctx.fail(path, f"expected a list, got {kind_of(value)}")
    return value


def as_str(ctx: Ctx, value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ctx.fail(path, f"expected a non-empty string, got {kind_of(value)}")
    return value


def as_opt_str(ctx: Ctx, value: Any, path: str) -> str | None:
    return None if value is None else as_str(ctx, value, path)


def as_str_list(ctx: Ctx, value: Any, path: str) -> list[str]:
    return [as_str(ctx, item, f"{path}[{i}]") for i, item in enumerate(as_list(ctx, value, path))]


def as_str_map(ctx: Ctx, value: Any, path: str) -> dict[str, str]:
    raw = as_mapping(ctx, value, path)
    return {key: as_str(ctx, item, f"{path}.{key}") for key, item in raw.items()}


def positive(ctx: Ctx, value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ctx.fail(path, f"expected a positive number, got {kind_of(value)}")
    return float(value)


def nonneg(ctx: Ctx, value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ctx.fail(path, f"expected a number >= 0, got {kind_of(value)}")
    return float(value)


def as_int(ctx: Ctx, value: Any, path: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ctx.fail(path, f"expected an integer {bounds}, got {kind_of(value)}")
    return value


def as_bool(ctx: Ctx, value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ctx.fail(path, f"expected true or false, got {kind_of(value)}")
    return value


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, str | int | float | bool):
        return f"{type(value).__name__} {value!r}"
    return type(value).__name__
