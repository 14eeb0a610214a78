"""Every path the gateway itself answers, in one table: path → (operation, client format, method).

The only place that looks at a request's path: the gateway finds its endpoint here, and the server renders
the errors it raises itself (413, 431, malformed HTTP …) in the format of the path's endpoint. An operation
proxied upstream (POST) is named by what it asks of a provider (`chat`, `messages`, `responses`,
`embeddings`, `count_tokens`); a local one (GET) by its handler. Adding a client-facing API is one format module
(`sidestep.formats`) and a row here. Plugins and observers serve paths of their own (`ServesEndpoints`); their
errors take the format `client_format` finds for the path.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidestep.formats.anthropic_messages import ANTHROPIC_MESSAGES
from sidestep.formats.base import ClientFormat
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.openai_responses import OPENAI_RESPONSES

__all__ = ["ENDPOINTS", "Endpoint", "client_format"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    operation: str
    format: ClientFormat  # what the client speaks here: its body's rules, its answers' and errors' shape
    method: str = "POST"  # POST: proxied upstream; GET: answered by the gateway itself


_CHAT = Endpoint("chat", OPENAI_CHAT)
_EMBEDDINGS = Endpoint("embeddings", OPENAI_CHAT)
_MESSAGES = Endpoint("messages", ANTHROPIC_MESSAGES)
_COUNT_TOKENS = Endpoint("count_tokens", ANTHROPIC_MESSAGES)
_MODELS = Endpoint("models", OPENAI_CHAT, "GET")
_RESPONSES = Endpoint("responses", OPENAI_RESPONSES)  # always translated: no target speaks it yet

ENDPOINTS: dict[str, Endpoint] = {
    "/v1/chat/completions": _CHAT,
    "/chat/completions": _CHAT,
    "/v1/embeddings": _EMBEDDINGS,
    "/embeddings": _EMBEDDINGS,
    "/v1/messages": _MESSAGES,
    "/anthropic/v1/messages": _MESSAGES,
    "/v1/messages/count_tokens": _COUNT_TOKENS,
    "/anthropic/v1/messages/count_tokens": _COUNT_TOKENS,
    "/v1/responses": _RESPONSES,
    "/responses": _RESPONSES,
    "/v1/models": _MODELS,
    "/models": _MODELS,
    "/health": Endpoint("health", OPENAI_CHAT, "GET"),
    "/ready": Endpoint("ready", OPENAI_CHAT, "GET"),
}

for _path, _endpoint in ENDPOINTS.items():  # checked once, at import: a row's format must be one clients speak
    if not isinstance(_endpoint.format, ClientFormat):
        raise TypeError(f"{_path}: {_endpoint.format.name} is not a client format")


def client_format(path: str) -> ClientFormat:
    """The format a client on `path` reads errors in: its endpoint's, or the endpoint's it is under (an
    Anthropic SDK's `/v1/messages/batches` reads Anthropic errors); OpenAI's otherwise (the most common
    client). Only errors come here: a request the gateway serves found its endpoint by one lookup."""
    path = path.partition("?")[0]
    while path:
        endpoint = ENDPOINTS.get(path)
        if endpoint is not None:
            return endpoint.format
        path = path.rpartition("/")[0]
    return OPENAI_CHAT
