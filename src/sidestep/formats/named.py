"""Format objects by name, for what keeps a format as text: a cached answer stored in Redis names the client
format it was written in, and is read back as that format's object here. Nothing on the request path looks
formats up by name; it holds the objects.
"""

from __future__ import annotations

from sidestep.core.format import Format
from sidestep.formats.anthropic_messages import ANTHROPIC_MESSAGES
from sidestep.formats.base import ClientFormat, Converses
from sidestep.formats.bedrock_converse import BEDROCK_CONVERSE
from sidestep.formats.cohere_v2 import COHERE_V2
from sidestep.formats.gemini import GEMINI
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.openai_completions import OPENAI_COMPLETIONS
from sidestep.formats.openai_responses import OPENAI_RESPONSES
from sidestep.formats.passthrough import OPENAI_MODERATIONS, RERANK

__all__ = ["client_format_named", "format_named"]

_CONVERSING: dict[str, Converses] = {
    each.name: each
    for each in (OPENAI_CHAT, ANTHROPIC_MESSAGES, OPENAI_RESPONSES, GEMINI, BEDROCK_CONVERSE, OPENAI_COMPLETIONS)
}
# Relayed-only APIs whose answers the cache keeps too (served only as they were stored, in the same format).
_CLIENTS: dict[str, ClientFormat] = {**_CONVERSING, RERANK.name: RERANK, OPENAI_MODERATIONS.name: OPENAI_MODERATIONS}
_FORMATS: dict[str, Format] = {**_CONVERSING, COHERE_V2.name: COHERE_V2}


def format_named(name: str) -> Format | None:
    return _FORMATS.get(name)


def client_format_named(name: str) -> ClientFormat | None:
    """The client format called `name` (what the cache stores answers in); None when there is none (an entry
    from another version)."""
    return _CLIENTS.get(name)
