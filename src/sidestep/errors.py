"""The error tree: every failure sidestep reports is one of these.

```
SidestepError                      base; carries status, type and code for rendering
├── ConfigError                    a config file or env setting is wrong (file, key path, reason)
│   └── ConfigErrors               every mistake found in one file (`errors`), one line each
├── RequestError                   the client sent something we cannot serve (4xx, never retried)
│   ├── BadRequest                 400 malformed JSON, missing field, wrong type
│   ├── NotFound                   404 unknown route / model / path
│   ├── PayloadTooLarge            413 body over the configured limit
│   ├── MethodNotAllowed           405
│   ├── Unauthorized               401 no or unknown virtual key (governance)
│   ├── Forbidden                  403 the key may not use that model (governance)
│   └── LimitExceeded              429 a key/team/customer rate limit or budget (retry_after, retryable)
├── UpstreamError                  one attempt at one target failed (status, headers, retry_after, retryable)
│   ├── UpstreamTimeout            connect / headers / read timeout (retryable)
│   └── UpstreamConnectionError    refused, reset, dropped, TLS failure (retryable)
├── UpstreamRejected               a target answered with a caller error (400 …): returned as is
└── AllAttemptsFailed              every target of a route failed; lists each Attempt
```

Rendering an error into a client format's JSON lives in `sidestep.formats`; this module only holds data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "AllAttemptsFailed",
    "Attempt",
    "BadRequest",
    "ConfigError",
    "ConfigErrors",
    "Forbidden",
    "LimitExceeded",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RequestError",
    "SidestepError",
    "Unauthorized",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamTimeout",
]


class SidestepError(Exception):
    """Base of every sidestep error. `status`, `type` and `code` drive the client-facing rendering."""

    status: int = 500
    type: str = "api_error"
    code: str | None = None
    param: str | None = None
    response_headers: tuple[tuple[str, str], ...] = ()  # extra headers on the error response

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if param is not None:
            self.param = param
        if code is not None:
            self.code = code


class ConfigError(SidestepError):
    """A configuration mistake, reported before the server starts."""

    def __init__(self, reason: str, *, source: str = "<config>", path: str = "") -> None:
        where = f"{source}: {path}: " if path else f"{source}: "
        super().__init__(where + reason)
        self.source = source
        self.path = path
        self.reason = reason


class ConfigErrors(ConfigError):
    """Several mistakes in one config, found in one pass (so one run of `sidestep check` lists them all);
    it reads as the first, and `str()` gives one line per mistake."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.reason, source=first.source, path=first.path)
        self.errors = tuple(errors)

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


class RequestError(SidestepError):
    status = 400
    type = "invalid_request_error"


class BadRequest(RequestError):
    status = 400


class NotFound(RequestError):
    status = 404
    code = "model_not_found"


class PayloadTooLarge(RequestError):
    status = 413
    code = "request_too_large"


class MethodNotAllowed(RequestError):
    status = 405
    code = "method_not_allowed"


class Unauthorized(RequestError):
    status = 401
    code = "invalid_api_key"


class Forbidden(RequestError):
    status = 403
    code = "model_not_allowed"


class Unavailable(SidestepError):
    """A gateway service the request needs cannot be reached (the cache's Redis during a purge)."""

    status = 503
    code = "unavailable"


class LimitExceeded(RequestError):
    """A governance limit refused the request. Rate limits say when to come back (`Retry-After`); a spent
    budget tells SDKs not to retry (`x-should-retry: false`), since retrying cannot help before the period
    ends."""

    status = 429

    def __init__(self, message: str, *, code: str, type_: str, retry_after: float | None) -> None:
        super().__init__(message, code=code)
        self.type = type_
        self.retry_after = retry_after
        if retry_after is None:
            self.response_headers = (("x-should-retry", "false"),)
        else:
            seconds = max(1, int(retry_after + 0.999))
            self.response_headers = (("retry-after", str(seconds)), ("x-should-retry", "true"))


class UpstreamError(SidestepError):
    """One attempt failed. `body` is the upstream error body (bytes) when there was one."""

    type = "upstream_error"
    where = ""  # the upstream's address when a connection failed: for the log, never in `message`

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        retryable: bool = True,
        retry_after: float | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers: Mapping[str, str] = headers or {}
        self.body = body
        self.retryable = retryable
        self.retry_after = retry_after
        # "context_window" or "content_policy" when recognised: they have their own fallbacks; "model_access"
        # for a 401/403/404 about the model asked for, which does not cool the key down
        self.kind = kind


class UpstreamTimeout(UpstreamError):
    """`where` is the upstream's address, for the operator's log only: `message` reaches clients, who
    should not learn the gateway's internal topology."""

    def __init__(self, message: str, *, phase: str = "read", where: str = "") -> None:
        super().__init__(message, status=504, retryable=True)
        self.phase = phase
        self.where = where


class UpstreamConnectionError(UpstreamError):
    """`where` as for `UpstreamTimeout`: logged, never in `message`."""

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(message, status=502, retryable=True)
        self.where = where


@dataclass(slots=True)
class Attempt:
    """The record of one try at one target. (Not frozen: frozen dataclasses cost 4x to build, and one
    is built per try on the hot path; nothing mutates it after creation.)"""

    provider: str
    model: str
    status: int | None
    reason: str
    duration_ms: float
    key: str = ""

    def describe(self) -> str:
        status = self.status if self.status is not None else "-"
        return f"{self.provider}/{self.model}: {status} {self.reason}"


class AllAttemptsFailed(SidestepError):
    """Every target was tried and failed. The status mirrors the last meaningful failure."""

    type = "upstream_error"
    code = "all_targets_failed"

    def __init__(
        self, attempts: Sequence[Attempt], *, status: int = 502, headline: str = "", code: str | None = None
    ) -> None:
        lines = "; ".join(a.describe() for a in attempts) or "no target was tried"
        head = headline or f"All {len(attempts)} attempt(s) failed"
        super().__init__(f"{head}: {lines}", code=code)
        self.attempts = tuple(attempts)
        self.status = status


class UpstreamRejected(SidestepError):
    """A target answered with a caller error (400, 422 …): trying elsewhere would not help, so the
    client gets that answer. `error` is the upstream error; `attempts` includes this last one."""

    def __init__(self, error: UpstreamError, attempts: Sequence[Attempt]) -> None:
        super().__init__(error.message)
        self.error = error
        self.status = error.status
        self.attempts = tuple(attempts)
