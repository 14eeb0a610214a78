"""`POST /sidestep/cache/purge`: drop cached answers by tenant, route or age (`sidestep cache purge`).

On only when `cache.admin_key` is set. The endpoint is guarded as every plugin endpoint that needs a caller
is (with governance on, a valid virtual key first), and then asks for the admin key in
`x-sidestep-admin-key`, compared in constant time. The body is a small JSON object:

    {"tenant": "key:alice", "route": "smart", "older_than": 3600}   # all given must hold
    {"all": true}                                                   # everything

`tenant` is what the cache files entries under (`key:<name>`, `team:<name>`, `customer:<name>`, or `*` when
entries are shared); `older_than` is in seconds. What arrives is checked before anything is dropped: unknown
fields, wrong types, control characters, oversized names or bodies are a 4xx saying which, and an empty
request purges nothing (it is refused: `all` must be said). The answer is `{"purged": <entries>}`.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from typing import Any

import msgspec

from sidestep.config.model import Secret
from sidestep.errors import BadRequest, PayloadTooLarge, Unauthorized, Unavailable
from sidestep.plugins.cache.store import Purge, Store
from sidestep.server.types import Request, Response

__all__ = ["MAX_BODY", "MAX_NAME", "check_admin", "purge_request", "purge_response"]

MAX_BODY = 4096  # bytes: a purge request is a few names
MAX_NAME = 256  # characters in a tenant or route
_LONGEST_AGE = 10 * 365 * 86400.0
_FIELDS = frozenset({"tenant", "route", "older_than", "all"})
_TENANT_KINDS = ("key:", "team:", "customer:")
_HEADER = "x-sidestep-admin-key"


def check_admin(request: Request, key: Secret) -> None:
    presented = request.header(_HEADER)
    if presented is None:
        raise Unauthorized(f"purging the cache needs the admin key in the {_HEADER} header")
    if not hmac.compare_digest(presented.encode("utf-8", "replace"), key.reveal().encode()):
        raise Unauthorized(f"the {_HEADER} presented is not the cache's admin key")


def purge_request(body: bytes, now: float) -> Purge:
    """The purge `body` asks for, or the 4xx saying what is wrong with it."""
    if len(body) > MAX_BODY:
        raise PayloadTooLarge(f"a purge request is at most {MAX_BODY} bytes, got {len(body)}")
    try:
        raw = msgspec.json.decode(body) if body.strip() else None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the purge request is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BadRequest(
            'a purge request is a JSON object: {"tenant": …, "route": …, "older_than": …} or {"all": true}'
        )
    unknown = sorted(str(name)[:40] for name in raw if name not in _FIELDS)
    if unknown:
        raise BadRequest(
            f"unknown purge field(s) {', '.join(map(repr, unknown))}; known: all, older_than, route, tenant"
        )
    tenant = _name(raw.get("tenant"), "tenant")
    if tenant is not None and tenant != "*" and not tenant.startswith(_TENANT_KINDS):
        raise BadRequest(f"tenant must be key:<name>, team:<name>, customer:<name> or *, got {tenant[:80]!r}")
    if tenant is not None and tenant.endswith(":"):
        raise BadRequest(f"tenant {tenant[:80]!r} names no one")
    route = _name(raw.get("route"), "route")
    before = _before(raw.get("older_than"), now)
    everything = raw.get("all", False)
    if not isinstance(everything, bool):
        raise BadRequest("all must be true or false")
    if tenant is None and route is None and before is None and not everything:
        raise BadRequest('say what to purge (tenant, route, older_than), or {"all": true} for everything')
    return Purge(tenant, route, before)


def _name(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{what} must be a non-empty string")
    if len(value) > MAX_NAME:
        raise BadRequest(f"{what} is at most {MAX_NAME} characters, got {len(value)}")
    if not value.isprintable():
        raise BadRequest(f"{what} must not hold control characters")
    return value


def _before(value: Any, now: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest("older_than must be a number of seconds")
    if not 0 <= value <= _LONGEST_AGE:
        raise BadRequest(f"older_than must be between 0 and {_LONGEST_AGE:g} seconds, got {value:g}")
    return now - float(value)


async def purge_response(store: Store, request: Request, key: Secret, clock: Callable[[], float]) -> Response:
    """The whole endpoint: the admin key, the request, the purge, its count."""
    check_admin(request, key)
    which = purge_request(request.body, clock())
    try:
        purged = await store.purge(which)
    except OSError as exc:
        raise Unavailable(f"the cache store could not be purged: {exc}") from None
    return Response(200, msgspec.json.encode({"purged": purged}), [("content-type", "application/json")])
