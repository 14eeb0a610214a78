"""How what routing hands back becomes the client's response: a served answer with the headers saying who
served it (rewritten into the client's format when the provider speaks another), a failure with every attempt
counted, a gateway error in the client's format, and a relayed stream read back as the whole answer it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from sidestep.config.model import Config
from sidestep.core.model import Usage
from sidestep.errors import AllAttemptsFailed, Attempt, SidestepError, UpstreamError, UpstreamRejected
from sidestep.formats.base import ClientFormat, CountsTokens, ReadsEmbeddings, WritesEmbeddings
from sidestep.formats.translate import collected_response, translate_embeddings, translate_response
from sidestep.routing.served import Served
from sidestep.server.types import Response

__all__ = [
    "JSON",
    "collected",
    "error_response",
    "failure",
    "failure_headers",
    "models_body",
    "served_headers",
    "translated",
]

JSON = ("content-type", "application/json")


def translated(
    served: Served,
    client: ClientFormat,
    request_id: str,
    operation: str = "chat",
    request: dict[str, Any] | None = None,
) -> Response:
    """A non-stream answer in the provider's format, rewritten in the client's: a chat answer, embeddings (in
    the shape `request`, the client's body, asked for) or a token count."""
    headers = served_headers(request_id, served)
    source = served.format
    try:
        if operation == "embeddings":
            if not isinstance(source, ReadsEmbeddings) or not isinstance(client, WritesEmbeddings):
                raise TypeError(f"no embeddings translation from {source.name} to {client.name}")
            body = translate_embeddings(served.body, source, client, served.target.model, request or {})
        elif operation == "count_tokens":
            if not isinstance(source, CountsTokens) or not isinstance(client, CountsTokens):
                raise TypeError(f"no token count translation from {source.name} to {client.name}")
            body = client.write_token_count(source.read_token_count(served.body))
        else:
            body = translate_response(served.body, source, client)
    except (msgspec.DecodeError, TypeError, ValueError, AttributeError, KeyError) as exc:
        error = UpstreamError(f"{served.target.label} returned an answer that could not be translated: {exc}")
        return error_response(client, error, headers)
    return Response(200, body, [JSON, *headers])


def collected(client: ClientFormat, pieces: list[bytes] | None, usage: Usage | None) -> bytes | None:
    """A relayed stream's events as the non-stream answer they amount to (what `KeepsAnswers` plugins get)."""
    if pieces is None:  # more than the relay keeps
        return None
    try:
        return collected_response(client, pieces, usage)
    except (msgspec.DecodeError, TypeError, ValueError, AttributeError, KeyError):
        return None


def failure(client: ClientFormat, exc: UpstreamRejected | AllAttemptsFailed, request_id: str) -> Response:
    headers = failure_headers(request_id, exc.attempts)
    if isinstance(exc, UpstreamRejected):
        error = exc.error
        return Response(error.status, client.upstream_error_body(error), [JSON, *headers])
    return error_response(client, exc, headers)


def error_response(client: ClientFormat, exc: SidestepError, headers: list[tuple[str, str]]) -> Response:
    """A gateway error, in the client's format."""
    return Response(exc.status, client.error_body(exc), [JSON, *headers])


def served_headers(request_id: str, served: Served) -> list[tuple[str, str]]:
    return [
        ("x-sidestep-provider", served.target.provider),
        ("x-sidestep-model", served.target.model),
        ("x-sidestep-attempts", str(len(served.attempts))),
        ("x-sidestep-fallback-index", str(served.fallback_index)),
        ("x-sidestep-retries", str(served.retries)),
        ("x-sidestep-request-id", request_id),
    ]


def failure_headers(request_id: str, attempts: tuple[Attempt, ...]) -> list[tuple[str, str]]:
    return [("x-sidestep-attempts", str(len(attempts))), ("x-sidestep-request-id", request_id)]


def models_body(config: Config, allowed: Callable[[str], bool] | None = None) -> bytes:
    """`GET /v1/models`: the routes and every provider's listed models (those `allowed`, when given)."""
    data: list[dict[str, Any]] = [
        {"id": name, "object": "model", "created": 0, "owned_by": "sidestep-route"} for name in config.routes
    ]
    for provider in config.providers.values():
        data.extend(
            {"id": f"{provider.name}/{model}", "object": "model", "created": 0, "owned_by": provider.name}
            for model in provider.models
        )
    if allowed is not None:
        data = [entry for entry in data if allowed(entry["id"])]
    return msgspec.json.encode({"object": "list", "data": data})
