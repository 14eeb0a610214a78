"""Every path the gateway itself answers, in one table: path → (operation, client format, method).

The only place that looks at a request's path: the gateway finds its endpoint here, and the server renders the
errors it raises itself (413, 431, malformed HTTP …) in the format of the path's endpoint. An operation proxied
upstream (POST) is named by what it asks of a provider (`chat`, `messages`, `responses`, `completions`, `converse`,
`invoke`, `embeddings`, `count_tokens`, and the relayed-only `rerank`, `moderations`, `images`, `transcriptions`,
`speech`); a local one (GET) by its handler. Adding a client-facing API is one format module (`sidestep.formats`)
and a row here. A row also holds its format's conversing side (`Endpoint.converses`, typed
`formats.base.Converses`: the same object, or None for a relayed-only API), given once where the row is written
(`_api`, `_relayed`), so that what translates, taps or caches gets it with the route, typed, and never asks.
Plugins and observers serve paths of their own (`ServesEndpoints`); their errors take the format `client_format`
finds for the path.

Some APIs name the model in the path rather than the body (Gemini's `/v1beta/models/{model}:generateContent`,
Bedrock's `/model/{modelId}/converse`): those are rows of `MODEL_PATHS`, a prefix and a suffix around the model,
asked only when the exact table has no row (`model_path`). Such a row may also say whether the path streams;
the gateway then writes that into the body as `"stream"` (a gateway field every format reads and no adapter
sends on as the client's), so that the path decides, whatever the body said. A row whose stream's shape the
query string picks (Gemini's `alt`: SSE, or one JSON array) names the function that picks the client format
(`by_query`); the route calls it once per request, before anything else is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any
from urllib.parse import unquote

from sidestep.formats.anthropic_messages import ANTHROPIC_MESSAGES
from sidestep.formats.base import ClientFormat, Converses, ListsModels, capability, stream_media_type
from sidestep.formats.bedrock_converse import BEDROCK_CONVERSE, BEDROCK_INVOKE
from sidestep.formats.gemini import GEMINI, stream_format
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.openai_completions import OPENAI_COMPLETIONS
from sidestep.formats.openai_responses import OPENAI_RESPONSES
from sidestep.formats.passthrough import (
    OPENAI_IMAGES,
    OPENAI_MODERATIONS,
    OPENAI_SPEECH,
    OPENAI_TRANSCRIPTIONS,
    RERANK,
)

__all__ = ["ENDPOINTS", "MODEL_PATHS", "Endpoint", "ModelPath", "client_format", "model_path", "models_client"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    operation: str
    format: ClientFormat  # what the client speaks here: its body's rules, its answers' and errors' shape
    # The same format as it converses through the canonical model (translated answers and streams, the usage tap,
    # the cache, the MCP agent); None for a relayed-only API, whose answers go back as the upstream sent them.
    converses: Converses | None
    method: str = "POST"  # POST: proxied upstream; GET: answered by the gateway itself
    stream: bool | None = None  # the path says whether the answer streams (Gemini, Bedrock); None: the body does
    # The client format the query string picks, once per request, in place of `format` (Gemini's `alt`: SSE or one
    # JSON array); it raises the request's 400 for a query it refuses. None: `format`, whatever the query.
    # A conversing format only (the pick is its own conversing side too).
    by_query: Callable[[str], Converses] | None = None
    # Read off the format once, when the row is made, for every request to it: bytes relayed as they come, with
    # the upstream's content type (`PassThrough.relays_bytes`: speech); the stream's media type when it is not SSE
    # (`stream_media_type`: Bedrock's frames); the format's own reading of what a request needs of a model
    # (`ReadsNeeds`), else None (the common rule, `formats.translate.request_needs`).
    opaque: bool = dc_field(init=False)
    media: str | None = dc_field(init=False)
    needs: Callable[[dict[str, Any], bool], frozenset[str]] | None = dc_field(init=False)

    def __post_init__(self) -> None:
        fmt = self.format
        object.__setattr__(self, "opaque", capability(fmt, "relays_bytes", False))
        object.__setattr__(self, "media", stream_media_type(fmt))
        # `ReadsNeeds`, read as an attribute: a row is also made per request for a format the query picks
        # (`paths.Proxied.of`), where a runtime-protocol isinstance would cost microseconds.
        object.__setattr__(self, "needs", capability(fmt, "request_needs", None))


def _api(
    operation: str,
    format: Converses,
    method: str = "POST",
    stream: bool | None = None,
    by_query: Callable[[str], Converses] | None = None,
) -> Endpoint:
    """A row of a client API that converses through the canonical model (mypy checks that `format` does)."""
    return Endpoint(operation, format, format, method, stream, by_query)


def _relayed(operation: str, format: ClientFormat, stream: bool | None = None) -> Endpoint:
    """A row of a relayed-only API (`formats.passthrough`, Bedrock's InvokeModel): served only by targets that
    speak it, its answers as they came, never translated (the import-time check below holds that `format` has no
    conversing side)."""
    return Endpoint(operation, format, None, "POST", stream)


@dataclass(frozen=True, slots=True)
class ModelPath:
    """`prefix` + a model name (percent-encoded, as SDKs send it) + `suffix` → `endpoint`."""

    prefix: str
    suffix: str
    endpoint: Endpoint


_CHAT = _api("chat", OPENAI_CHAT)
_EMBEDDINGS = _api("embeddings", OPENAI_CHAT)
_MESSAGES = _api("messages", ANTHROPIC_MESSAGES)
_COUNT_TOKENS = _api("count_tokens", ANTHROPIC_MESSAGES)
_MODELS = _api("models", OPENAI_CHAT, "GET")
_RESPONSES = _api("responses", OPENAI_RESPONSES)  # passed through to targets that serve it, else translated
_COMPLETIONS = _api("completions", OPENAI_COMPLETIONS)  # never translated: only targets that serve it
# boto3's bedrock-runtime: Converse on any target (translated, or passed through to Bedrock); InvokeModel and
# InvokeModelWithResponseStream, the model's own body, on Bedrock targets only (no other adapter serves `invoke`):
# relayed-only, as they came.
_BEDROCK_PATHS = (
    ModelPath("/model/", "/converse", _api("converse", BEDROCK_CONVERSE, stream=False)),
    ModelPath("/model/", "/converse-stream", _api("converse", BEDROCK_CONVERSE, stream=True)),
    ModelPath("/model/", "/invoke", _relayed("invoke", BEDROCK_INVOKE, stream=False)),
    ModelPath("/model/", "/invoke-with-response-stream", _relayed("invoke", BEDROCK_INVOKE, stream=True)),
)
# Relayed same-format only (`formats.passthrough`): served by the targets whose API has the operation.
_RERANK = _relayed("rerank", RERANK)
_MODERATIONS = _relayed("moderations", OPENAI_MODERATIONS)
_IMAGES = _relayed("images", OPENAI_IMAGES)
_TRANSCRIPTIONS = _relayed("transcriptions", OPENAI_TRANSCRIPTIONS)
_SPEECH = _relayed("speech", OPENAI_SPEECH)
# google-genai: `{api_version}/models/{model}:{method}`, v1 by default, v1beta when asked (both are served).
_GEMINI_METHODS = {
    ":generateContent": _api("chat", GEMINI, stream=False),
    # `?alt=sse`: Server-Sent Events; no `alt` or `alt=json`: one JSON array, as Google's REST API answers.
    ":streamGenerateContent": _api("chat", GEMINI, stream=True, by_query=stream_format),
    ":countTokens": _api("count_tokens", GEMINI),
    ":embedContent": _api("embeddings", GEMINI),
    ":batchEmbedContents": _api("embeddings", GEMINI),
}

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
    "/v1/completions": _COMPLETIONS,
    "/completions": _COMPLETIONS,
    "/v1/rerank": _RERANK,
    "/rerank": _RERANK,
    "/v2/rerank": _RERANK,  # the Cohere SDK's own path
    "/v1/moderations": _MODERATIONS,
    "/moderations": _MODERATIONS,
    "/v1/images/generations": _IMAGES,
    "/images/generations": _IMAGES,
    "/v1/audio/transcriptions": _TRANSCRIPTIONS,
    "/audio/transcriptions": _TRANSCRIPTIONS,
    "/v1/audio/speech": _SPEECH,
    "/audio/speech": _SPEECH,
    "/v1/models": _MODELS,
    "/models": _MODELS,
    "/health": _api("health", OPENAI_CHAT, "GET"),
    "/ready": _api("ready", OPENAI_CHAT, "GET"),
}

# Longest suffix first: `/v1/models/{m}:generateContent` must not be read as `/v1/models/{id}`.
MODEL_PATHS: tuple[ModelPath, ...] = tuple(
    sorted(
        (
            ModelPath("/v1/models/", "", _MODELS),  # `GET /v1/models/{id}`: a route or a `provider/model`
            ModelPath("/models/", "", _MODELS),
            *_BEDROCK_PATHS,
            *(
                ModelPath(f"/{version}/models/", suffix, e)
                for version in ("v1", "v1beta")
                for suffix, e in _GEMINI_METHODS.items()
            ),
        ),
        key=lambda row: -len(row.suffix),
    )
)

for _path, _endpoint in [
    *ENDPOINTS.items(),
    *((row.prefix + "{model}" + row.suffix, row.endpoint) for row in MODEL_PATHS),
]:
    # Checked once, at import: a row's conversing side is its format, or None only for one that does not converse.
    _side = _endpoint.converses
    if _side is not _endpoint.format if _side is not None else isinstance(_endpoint.format, Converses):
        raise TypeError(f"{_path}: the row's conversing side does not match {_endpoint.format.name}")


def model_path(path: str) -> tuple[Endpoint, str] | None:
    """The endpoint of a path that names its model, and the model (percent-decoded, not yet checked:
    `formats.request.model_named` checks it once the caller is known); None when no row matches."""
    for row in MODEL_PATHS:
        if path.startswith(row.prefix) and path.endswith(row.suffix):
            raw = path[len(row.prefix) : len(path) - len(row.suffix)]
            if raw:
                return row.endpoint, unquote(raw, errors="replace")
    return None


def models_client(anthropic_version: str | None) -> ListsModels:
    """Who is asking `GET /v1/models` (and `/v1/models/{id}`), which both SDKs call: the Anthropic SDK sends
    `anthropic-version` on every request (and the OpenAI SDK never does), so a request carrying it is answered
    in Anthropic's shape (its list paged, its errors); any other in OpenAI's. Decided here only."""
    return ANTHROPIC_MESSAGES if anthropic_version else OPENAI_CHAT


def client_format(path: str) -> ClientFormat:
    """The format a client on `path` reads errors in: its endpoint's, or the endpoint's it is under (an
    Anthropic SDK's `/v1/messages/batches` reads Anthropic errors), or that of the model paths it is under (a
    boto3 client's `/model/{id}/<unknown>` reads Bedrock errors); OpenAI's otherwise (the most common
    client). Only errors come here: a request the gateway serves found its endpoint by one lookup."""
    path = path.partition("?")[0]
    named = model_path(path)
    if named is not None:
        return named[0].format
    rest = path
    while rest:
        endpoint = ENDPOINTS.get(rest)
        if endpoint is not None:
            return endpoint.format
        rest = rest.rpartition("/")[0]
    # Under a prefix of paths that name their model (`/model/{id}/<unknown>`): that API's errors.
    return next((row.endpoint.format for row in MODEL_PATHS if path.startswith(row.prefix)), OPENAI_CHAT)
