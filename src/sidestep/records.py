"""The log records: one per HTTP request for the access log, one per proxied request for the request log.

Each is a msgspec struct of plain values, built in one call and kept out of the garbage collector's sight
(`gc=False`) until a batch is encoded (`sidestep.batch`). msgspec reads a struct's annotations when its
class is created, so they live in a module that stays interpreted (`make compile` leaves it out).
"""

from __future__ import annotations

import msgspec

__all__ = ["AccessLine", "AttemptRecord", "RequestRecord", "UsageRecord"]


class AccessLine(msgspec.Struct, gc=False, omit_defaults=True):
    """One line, built in one call when the response head is ready. Plain values only (never the request,
    its headers or bodies), kept out of the garbage collector's sight until the flush encodes the batch."""

    ts: float
    method: str
    path: str
    status: int
    ms: float  # to the response head (streams: to their first event)
    stream: bool
    provider: str | None = None
    model: str | None = None
    attempts: str | None = None
    id: str | None = None
    client: str | None = None


class AttemptRecord(msgspec.Struct, gc=False):
    target: str
    status: int | None
    reason: str
    ms: float


class UsageRecord(msgspec.Struct, gc=False, omit_defaults=True):
    input: int
    output: int
    estimated: bool = False  # the stream ended without the provider's count: charged by estimate
    units: float = 0.0  # billed units of a relayed-only API (images, search units, audio seconds, characters)


class RequestRecord(msgspec.Struct, gc=False, omit_defaults=True):
    ts: float
    id: str
    operation: str
    requested: str | None
    stream: bool
    status: int
    ms: float
    provider: str | None = None
    model: str | None = None
    fallbacks: tuple[str, ...] | None = None
    key: str | None = None
    team: str | None = None
    customer: str | None = None
    user: str | None = None  # the end user the client named (OpenAI `user`, Anthropic `metadata.user_id`)
    attempts: list[AttemptRecord] | None = None
    usage: UsageRecord | None = None
    cost_usd: float | None = None
    error: str | None = None
    cache: str | None = None  # hit, miss or bypass, when a cache is configured
    arguments: str | None = None  # an MCP tool call's arguments (JSON, at most 4 KiB), when mcp.log_arguments is on
