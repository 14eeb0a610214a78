"""What a cached answer is filed under: a digest of what determines the answer, within one tenant.

A chat request is keyed on its canonical form (`sidestep.core.model.ChatRequest`), so the same
conversation asked in OpenAI's format and in Anthropic's lands on the same entry; what does not change the
answer is left out (the stream flag and its options, the end user's id, metadata). Embeddings are keyed on
their body. The tenant (`tenant_of`) comes first in the key: two tenants never share an entry unless the
config says they do (`cache.scope: global`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from sidestep.config.model import VirtualKey
from sidestep.core.model import ChatRequest, ToolResultPart
from sidestep.formats.base import Converses
from sidestep.formats.body import materialize
from sidestep.formats.translate import to_canonical

__all__ = ["Keyed", "chat_key", "embeddings_key", "semantic_parts", "tenant_of"]

# Fields that do not change the answer: who asks, how it is delivered, what the provider keeps.
_IGNORED = frozenset(
    {"stream", "stream_options", "user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"}
)
_SHARED = "*"  # the tenant when entries are shared (`scope: global`, or no caller identity: no virtual keys)


class Keyed:
    """A request's key, whether its answer is a deterministic function of it, and (chat) its canonical form."""

    __slots__ = ("deterministic", "digest", "request")

    def __init__(self, digest: str, deterministic: bool, request: ChatRequest | None = None) -> None:
        self.digest = digest
        self.deterministic = deterministic
        self.request = request


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


def chat_key(source: Converses, body: dict[str, Any], model: str = "") -> Keyed | None:
    """The key of a chat request in any format; None when it cannot be read (the provider says why). `model`:
    the model asked for, which a format naming it in the path (Gemini) has not in its body."""
    try:
        request = to_canonical(source, body)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, msgspec.MsgspecError):
        return None
    request.model = request.model or model
    extras = request.extras
    deterministic = (request.temperature == 0 or extras.get("seed") is not None) and extras.get("n") in (None, 1)
    if extras:
        extras = {name: value for name, value in extras.items() if name not in _IGNORED}
    request = msgspec.structs.replace(request, stream=False, include_usage=False, user=None, extras=extras)
    return Keyed(_digest(b"chat", msgspec.json.encode(request, order="sorted")), deterministic, request)


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


def embeddings_key(body: dict[str, Any], model: str = "") -> Keyed | None:
    try:
        fields = {name: value for name, value in materialize(body).items() if name not in _IGNORED}
        fields.setdefault("model", model)
        return Keyed(_digest(b"embeddings", msgspec.json.encode(fields, order="sorted")), True)
    except (TypeError, ValueError, msgspec.MsgspecError):
        return None


def _digest(kind: bytes, encoded: bytes) -> str:
    return hashlib.blake2b(kind + b"\0" + encoded, digest_size=20).hexdigest()
