"""What every client format reads out of a request before routing: the model names (with per-request
fallbacks) and whether it streams. Model names are checked here once, whatever the format."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sidestep.errors import BadRequest
from sidestep.formats.body import field

__all__ = ["MAX_MODEL_NAME", "ParsedRequest", "model_named", "models_of"]

MAX_MODEL_NAME = 256
# What no model id holds: control or line-breaking characters, or a "." or ".." path segment. Adapters escape
# the names they put in URL paths; these are refused outright, before they reach a URL, a header or a log.
_NOT_A_MODEL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]|(?:^|/)\\.\\.?(?:/|$)")


@dataclass(slots=True)
class ParsedRequest:
    body: dict[str, Any]
    models: list[str]  # the primary model first, then per-request fallbacks, in order
    stream: bool
    # Capabilities the request needs of a target whatever the config says (`responses`: it uses what only the
    # Responses API carries); the ones a config's `lacks` may rule out are `translate.request_needs`'.
    needs: frozenset[str] = frozenset()


def models_of(body: dict[str, Any]) -> list[str]:
    model = field(body, "model")
    # OpenRouter-style `models`, LiteLLM-style `fallbacks`: rarely sent, so looked for before anything is built.
    extra = _fallbacks(body) if "models" in body or "fallbacks" in body else None
    if model is None and extra:
        return extra
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string.", param="model")
    # The usual name is printable and has no segment starting with '.': a check in C, no regex, no call.
    if len(model) > MAX_MODEL_NAME or not model.isprintable() or model[0] == "." or "/." in model:
        _check_name(model, "model")
    return [model, *extra] if extra else [model]


def _fallbacks(body: dict[str, Any]) -> list[str]:
    extra: list[str] = []
    for name in ("models", "fallbacks"):
        value = field(body, name)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise BadRequest(f"'{name}' must be an array of model names.", param=name)
        for each in value:
            if len(each) > MAX_MODEL_NAME or not each.isprintable() or each[:1] == "." or "/." in each:
                _check_name(each, name)
        extra.extend(value)
    return extra


def model_named(name: str, param: str = "model") -> str:
    """A model name taken from elsewhere than the body (a path segment), checked by the same rules."""
    if not name:
        raise BadRequest(f"'{param}' is required and must be a non-empty string.", param=param)
    _check_name(name, param)
    return name


def _check_name(name: str, param: str) -> None:
    if len(name) > MAX_MODEL_NAME or _NOT_A_MODEL.search(name) is not None:
        reason = (
            f"is longer than {MAX_MODEL_NAME} characters"
            if len(name) > MAX_MODEL_NAME
            else "holds a control character or a '.' or '..' path segment"
        )
        raise BadRequest(f"'{param}' is not a valid model name: it {reason}.", param=param, code="invalid_model")
