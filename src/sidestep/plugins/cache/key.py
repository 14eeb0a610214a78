"""What a cached answer is filed under: a digest of what determines the answer, within one tenant.

How a request is keyed is the table's (`sidestep.plugins.cache.cacheable`): a chat request in OpenAI's,
Anthropic's or the Responses API's format on its canonical form (`sidestep.core.model.ChatRequest`), so the
same conversation asked in any of them lands on the same entry; a Gemini or Converse chat, a completion,
embeddings, token counts, rerank and moderations on their body as sent and the model, within their format. What
does not change the answer is left out (the stream flag and its options, the end user's id, metadata). The
tenant (`tenant_of`) comes first in the key: two tenants never share an entry unless the config says they do
(`cache.scope: global`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from sidestep.config.model import VirtualKey
from sidestep.core.model import ChatRequest, ToolResultPart
from sidestep.errors import SidestepError
from sidestep.formats.base import ClientFormat, Converses
from sidestep.formats.body import materialize
from sidestep.plugins.cache.cacheable import Cacheable, Sampling

__all__ = ["Keyed", "request_key", "semantic_parts", "tenant_of"]

# Fields that do not change the answer: who asks, how it is delivered, what the provider keeps.
_IGNORED = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "requestMetadata",
    }
)
_UNREADABLE = (SidestepError, TypeError, ValueError, KeyError, AttributeError, IndexError, msgspec.MsgspecError)
_SHARED = "*"  # the tenant when entries are shared (`scope: global`, or no caller identity: no virtual keys)


class Keyed:
    """A request's key, whether its answer is a deterministic function of it, and (chat) its canonical form with,
    for a body key, a digest of the rest of its body (what a semantic neighbour must share beyond that form)."""

    __slots__ = ("deterministic", "digest", "request", "rest")

    def __init__(
        self, digest: str, deterministic: bool, request: ChatRequest | None = None, rest: str | None = None
    ) -> None:
        self.digest = digest
        self.deterministic = deterministic
        self.request = request
        self.rest = rest


def tenant_of(principal: Any, scope: str) -> str:
    """Who shares entries with whom: the virtual key, its team or its customer (a key without one is its
    own tenant), or everyone."""
    if scope == "global" or not isinstance(principal, VirtualKey):
        return _SHARED
    if scope == "team" and principal.team is not None:
        return "team:" + principal.team
    if scope == "customer" and principal.customer is not None:
        return "customer:" + principal.customer
    return "key:" + principal.name


def request_key(
    rule: Cacheable, source: ClientFormat, converses: Converses | None, body: dict[str, Any], model: str
) -> Keyed | None:
    """The key of a request `rule` says is cacheable; None when it is not cached after all: it refers to state at
    the provider (`rule.stateful`), or cannot be read (the provider says why). `converses`: `source` as it reads
    requests into the canonical model (the route's `Endpoint.converses`; None for a relayed-only API, which the
    table keys on its body only). `model`: the model asked for, which a format naming it in the path (Gemini,
    Bedrock) has not in its body."""
    try:
        fields = materialize(body)
        if any(fields.get(name) is not None and fields.get(name) is not False for name in rule.stateful):
            return None
        if rule.canonical:
            if converses is None:  # never: the table keys only conversing formats canonically (its test says)
                return None
            return _canonical_key(rule, converses, fields, model)
        return _body_key(rule, source, converses, fields, model)
    except _UNREADABLE:
        return None  # a BadRequest from a format's reading: the provider may well take it, uncached


def _canonical_key(rule: Cacheable, source: Converses, fields: dict[str, Any], model: str) -> Keyed:
    """Keyed on the canonical request (any format reading into the same request shares the entry)."""
    request = source.read_request(fields)
    request.model = request.model or model
    extras = request.extras
    deterministic = (request.temperature == 0 or extras.get("seed") is not None) and extras.get("n") in (None, 1)
    if extras:
        extras = {name: value for name, value in extras.items() if name not in _IGNORED}
    request = msgspec.structs.replace(request, stream=False, include_usage=False, user=None, extras=extras)
    encoded = msgspec.json.encode(request, order="sorted")
    raw = {name: fields[name] for name in rule.raw if fields.get(name) is not None}
    if raw:  # what the canonical model leaves out of these fields
        encoded += b"\0" + msgspec.json.encode(raw, order="sorted")
    return Keyed(_digest(b"chat", encoded), deterministic, request)


def _body_key(
    rule: Cacheable, source: ClientFormat, converses: Converses | None, fields: dict[str, Any], model: str
) -> Keyed:
    """Keyed on the body as sent, within its format; a chat's canonical request kept for the semantic index."""
    request = None
    if rule.readable or rule.conversation:
        try:
            if converses is None:  # never: the table reads only conversing formats' requests (its test says)
                raise TypeError(f"{source.name} requests are not read into the canonical model")
            request = converses.read_request(fields)
        except _UNREADABLE:
            if rule.readable:
                raise
    kept = {name: value for name, value in fields.items() if name not in _IGNORED}
    kept.setdefault("model", model)
    digest = _digest(source.name.encode() + b"\0" + rule.kind.encode(), msgspec.json.encode(kept, order="sorted"))
    deterministic = rule.sampling is None or _deterministic(rule.sampling, fields)
    rest = None
    if request is not None and rule.conversation:
        request.model = request.model or model
        others = {name: value for name, value in kept.items() if name not in rule.conversation}
        rest = _digest(b"rest", msgspec.json.encode(others, order="sorted"))
    return Keyed(digest, deterministic, request if rule.conversation else None, rest)


def _deterministic(sampling: Sampling, fields: dict[str, Any]) -> bool:
    temperature, seed = _first(fields, sampling.temperature), _first(fields, sampling.seed)
    count = _first(fields, sampling.count)
    return (temperature == 0 or seed is not None) and count in (None, 1)


def _first(fields: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> Any:
    for path in paths:
        value: Any = fields
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        if value is not None:
            return value
    return None


def semantic_parts(request: ChatRequest) -> tuple[str, str] | None:
    """(what a semantic neighbour must share: the request without its conversation — model, tools, sampling —,
    the conversation's text to embed); None for a conversation with tool results (an answer that depends on
    what a tool returned is not one to borrow from a neighbour)."""
    lines = [f"system: {part.text}" for part in request.system]
    for message in request.messages:
        if message.role == "tool" or any(isinstance(part, ToolResultPart) for part in message.parts):
            return None
        lines.append(f"{message.role}: {message.text}")
    rest = msgspec.structs.replace(request, messages=[], system=[])
    return _digest(b"semantic", msgspec.json.encode(rest, order="sorted")), "\n".join(lines)


def _digest(kind: bytes, encoded: bytes) -> str:
    return hashlib.blake2b(kind + b"\0" + encoded, digest_size=20).hexdigest()
