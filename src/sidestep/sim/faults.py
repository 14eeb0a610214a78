"""Fault specs and scenarios for the provider simulator.

A `FaultSpec` is written compactly, e.g. `status=503,retry_after=2` or `ttft=1.5,chunk_delay=0.05` or
`drop_after=3` (cut the connection) or `drop_mid_event=3` (send half of the fourth event, then cut) or
`stream_error_after=3` (a well-formed in-stream error event) or
`blocked` / `blocked_output` (a safety block of the prompt, or of the answer half-way) or `error_200` (a 200
whose body is the format's error body: no answer).
A `Scenario` is an ordered list of rules (time window relative to the simulator's start,
optional model globs, optional every-Nth) each carrying a spec; the first matching rule wins.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = ["FaultSpec", "Rule", "Scenario", "parse_fault"]

_FLOATS = {"retry_after", "latency", "ttft", "chunk_delay", "rate"}
_INTS = {"status", "chunks", "drop_after", "drop_mid_event", "stream_error_after"}
_FLAGS = {"hang", "reset", "malformed", "retry_after_date", "blocked", "blocked_output", "error_200"}
_STRINGS = {"message"}
_ALIASES = {"body": "message", "retry-after": "retry_after", "delay": "latency"}


@dataclass(frozen=True, slots=True)
class FaultSpec:
    status: int | None = None  # answer with this error status (OpenAI error JSON)
    retry_after: float | None = None  # Retry-After header, seconds
    retry_after_date: bool = False  # render Retry-After as an HTTP-date instead of seconds
    latency: float = 0.0  # delay before the response headers
    ttft: float = 0.0  # streams: delay before the first content chunk (headers already sent)
    chunk_delay: float = 0.0  # streams: delay between chunks
    chunks: int | None = None  # streams: how many content pieces
    hang: bool = False  # never answer
    reset: bool = False  # cut the connection before any byte
    drop_after: int | None = None  # streams: cut the connection after this many events
    drop_mid_event: int | None = None  # streams: after this many events, half of the next one, then cut
    malformed: bool = False  # a 200 whose body (or an event) is not valid JSON
    rate: float = 1.0  # probability that the fault applies to a request
    message: str | None = None  # custom error message
    stream_error_after: int | None = None  # streams: after this many events, send the dialect's error event and end
    blocked: bool = False  # safety filter blocks the prompt (Gemini promptFeedback, Anthropic/OpenAI refusal)
    blocked_output: bool = False  # safety filter stops the answer half-way (finishReason SAFETY)
    error_200: bool = False  # non-streams: a 200 whose body is the format's error body, not an answer

    @property
    def is_healthy(self) -> bool:
        """True when the spec only shapes timing and never fails a request."""
        if self.hang or self.reset or self.malformed or self.blocked or self.blocked_output or self.error_200:
            return False
        broken = self.drop_after is not None or self.drop_mid_event is not None or self.stream_error_after is not None
        return self.status is None and not broken

    def describe(self) -> str:
        parts = []
        for spec_field in fields(self):
            value = getattr(self, spec_field.name)
            if value == spec_field.default:
                continue
            parts.append(spec_field.name if value is True else f"{spec_field.name}={value}")
        return ",".join(parts) or "healthy"


def parse_fault(text: str) -> FaultSpec:
    """Parse `key=value,flag,...` (a bare number is a status); a bad token raises ValueError naming it."""
    values: dict[str, Any] = {}
    for raw in text.split(","):
        token = raw.strip()
        if not token:
            continue
        if token.isdigit():  # shorthand: `model@503` is `status=503`
            token = f"status={token}"
        name, sep, value = token.partition("=")
        name = _ALIASES.get(name.strip(), name.strip())
        value = value.strip()
        if name in _FLAGS and not sep:
            values[name] = True
        elif name in _FLOATS and sep:
            values[name] = _number(float, name, value, token)
        elif name in _INTS and sep:
            values[name] = _number(int, name, value, token)
        elif name in _STRINGS and sep:
            values[name] = value
        else:
            known = ", ".join(sorted(_FLOATS | _INTS | _FLAGS | _STRINGS))
            raise ValueError(f"bad fault token {token!r} in {text!r} (known: {known}; flags take no value)")
    spec = FaultSpec(**values)
    if spec.status is not None and not 400 <= spec.status <= 599:
        raise ValueError(f"bad fault token 'status={spec.status}': expected an HTTP error status 400-599")
    if not 0.0 <= spec.rate <= 1.0:
        raise ValueError(f"bad fault token 'rate={spec.rate}': expected a probability between 0 and 1")
    return spec


def _number(kind: type[int] | type[float], name: str, value: str, token: str) -> Any:
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"bad fault token {token!r}: {name} needs a {kind.__name__}") from None
    if number < 0:
        raise ValueError(f"bad fault token {token!r}: {name} cannot be negative")
    return number


@dataclass(frozen=True, slots=True)
class Rule:
    fault: FaultSpec
    start: float = 0.0
    end: float | None = None
    models: tuple[str, ...] = ()
    every: int | None = None

    def matches(self, elapsed: float, model: str, count: int) -> bool:
        if elapsed < self.start or (self.end is not None and elapsed >= self.end):
            return False
        if self.models and not any(fnmatch.fnmatchcase(model, glob) for glob in self.models):
            return False
        return self.every is None or count % self.every == 0


class Scenario:
    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)

    def fault_at(self, elapsed: float, model: str, count: int) -> FaultSpec | None:
        for rule in self.rules:
            if rule.matches(elapsed, model, count):
                return rule.fault
        return None

    @classmethod
    def from_data(cls, data: Any, source: str = "<scenario>") -> Scenario:
        items = data.get("rules") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ValueError(f"{source}: expected a list of rules (or a mapping with `rules:`)")
        return cls([_rule(item, f"{source}: rules[{i}]") for i, item in enumerate(items)])

    @classmethod
    def from_yaml(cls, text: str, source: str = "<scenario>") -> Scenario:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{source}: invalid YAML: {exc}") from exc
        return cls.from_data(data, source)

    @classmethod
    def from_file(cls, path: str | Path) -> Scenario:
        return cls.from_yaml(Path(path).read_text(encoding="utf-8"), str(path))


def _rule(item: Any, where: str) -> Rule:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected a mapping with `fault:`")
    unknown = set(item) - {"fault", "start", "end", "models", "every"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if not isinstance(item.get("fault"), str):
        raise ValueError(f"{where}.fault: expected a fault spec string such as 'status=503,rate=0.5'")
    try:
        fault = parse_fault(item["fault"])
    except ValueError as exc:
        raise ValueError(f"{where}.fault: {exc}") from None
    start, end = item.get("start", 0), item.get("end")
    for name, value in (("start", start), ("end", end)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise ValueError(f"{where}.{name}: expected seconds >= 0, got {value!r}")
    models = item.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise ValueError(f"{where}.models: expected a list of model globs")
    every = item.get("every")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ValueError(f"{where}.every: expected an integer >= 1, got {every!r}")
    return Rule(fault, float(start), None if end is None else float(end), tuple(models), every)
