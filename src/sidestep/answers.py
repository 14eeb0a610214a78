"""How what routing hands back becomes the client's response: a served answer with the headers saying who
served it (rewritten into the client's format when the provider speaks another), a failure with every attempt
counted, a gateway error in the client's format, and a relayed stream read back as the whole answer it was.
The models the gateway lists (`GET /v1/models`, `GET /v1/models/{id}`) are answered here too, in the shape of
the SDK asking (`formats.base.ListsModels`).
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

import msgspec

from sidestep.config.model import Config
from sidestep.core.model import Usage
from sidestep.errors import AllAttemptsFailed, Attempt, NotFound, SidestepError, UpstreamError, UpstreamRejected
from sidestep.formats.base import (
    ClientFormat,
    Converses,
    CountsTokens,
    ListsModels,
    ModelCard,
    ReadsEmbeddings,
    WritesEmbeddings,
    capability,
    translatable,
)
from sidestep.formats.translate import collected_response, translate_embeddings, translate_response
from sidestep.relay.job import stream_headers
from sidestep.routing.served import Served
from sidestep.server.types import Response

__all__ = [
    "JSON",
    "collected",
    "error_headers",
    "error_response",
    "failure",
    "failure_headers",
    "model_cards",
    "models_answer",
    "models_body",
    "relayed",
    "served_headers",
    "stream_head",
    "translated",
]

JSON = ("content-type", "application/json")


def relayed(served: Served, request_id: str) -> Response:
    """A relayed-only API's answer (`formats.passthrough`: `Endpoint.opaque`) as the upstream sent it, content type
    included."""
    return Response(served.response.status, served.body, [_upstream_type(served), *served_headers(request_id, served)])


def translated(
    served: Served,
    client: Converses,
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
        elif translatable(source):
            body = translate_response(served.body, source, client)
        else:  # a relayed-only API's format serves only its own operations, never a conversing client's
            raise TypeError(f"{source.name} answers are relayed as they are, never translated")
    except (msgspec.DecodeError, TypeError, ValueError, AttributeError, KeyError) as exc:
        error = UpstreamError(f"{served.target.label} returned an answer that could not be translated: {exc}")
        return error_response(client, error, headers)
    return Response(200, body, [JSON, *headers])


def collected(client: Converses, pieces: list[bytes] | None, usage: Usage | None) -> bytes | None:
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
        body = client.upstream_error_body(error)
        return Response(error.status, body, [JSON, *error_headers(client, error.status), *headers])
    return error_response(client, exc, headers)


def error_response(client: ClientFormat, exc: SidestepError, headers: list[tuple[str, str]]) -> Response:
    """A gateway error, in the client's format."""
    return Response(exc.status, client.error_body(exc), [JSON, *error_headers(client, exc.status), *headers])


def error_headers(client: ClientFormat, status: int) -> list[tuple[str, str]]:
    """The headers an error carries for SDKs that read its kind from one (`NamesErrors`: Bedrock's). An attribute
    read, not `isinstance`, which costs microseconds on a runtime-checkable protocol (a flood of 401s pays it)."""
    named = capability(client, "error_headers", None)
    if named is None:
        return []
    headers: list[tuple[str, str]] = named(status)
    return headers


def stream_head(client: ClientFormat, served: Served, media: str | None, opaque: bool) -> list[tuple[str, str]]:
    """A stream's first headers: the client format's (`relay.job.stream_headers`), or the upstream's content
    type for opaque bytes (speech audio)."""
    if opaque and served.format is client:
        return [_upstream_type(served), ("cache-control", "no-cache"), ("x-accel-buffering", "no")]
    return stream_headers(media)


def _upstream_type(served: Served) -> tuple[str, str]:
    kind = served.response.headers.get("content-type") or "application/octet-stream"
    return ("content-type", kind if kind.isprintable() else "application/octet-stream")


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


def model_cards(config: Config, allowed: Callable[[str], bool] | None = None) -> list[ModelCard]:
    """The routes and every provider's listed models (those `allowed`, when given), in the config's order."""
    cards = [ModelCard(name, "sidestep-route") for name in config.routes]
    for provider in config.providers.values():
        cards.extend(ModelCard(f"{provider.name}/{model}", provider.name) for model in provider.models)
    return cards if allowed is None else [card for card in cards if allowed(card.id)]


def models_body(config: Config, allowed: Callable[[str], bool] | None = None) -> bytes:
    """`GET /v1/models` as OpenAI's SDK reads it."""
    return msgspec.json.encode(
        {
            "object": "list",
            "data": [
                {"id": card.id, "object": "model", "created": 0, "owned_by": card.owned_by}
                for card in model_cards(config, allowed)
            ],
        }
    )


def models_answer(
    config: Config,
    client: ListsModels,
    query: str,
    model: str | None = None,
    allowed: Callable[[str], bool] | None = None,
    targets: Container[str] = (),
) -> Response:
    """The list (`model` None), or the one model named: a route, a listed `provider/model` or a target a route
    names (`targets`); a 404 in the client's shape for any other, or one the caller may not use (`allowed`)."""
    cards = model_cards(config, allowed)
    try:
        if model is None:
            return Response(200, client.write_models(cards, query), [JSON])
        card = next((card for card in cards if card.id == model), None)
        if card is None and model in targets and (allowed is None or allowed(model)):
            card = ModelCard(model, model.partition("/")[0])
        if card is None:
            shown = model if len(model) <= 256 else model[:256] + "…"
            raise NotFound(f"The model '{shown}' does not exist: not a route or a model this gateway serves.")
        return Response(200, client.write_model(card), [JSON])
    except SidestepError as exc:
        return error_response(client, exc, [])
