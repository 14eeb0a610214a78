"""The adapter for OpenAI's wire API, shared by every OpenAI-compatible provider in the catalog.

Same-format traffic is a pass-through: the body the client sent goes upstream with only the model
rewritten and sidestep's own fields removed (chat and embeddings in `OPENAI_CHAT`; the legacy completions
in `OPENAI_COMPLETIONS`, served only by providers whose catalog row says they still have it; the Responses
API in `OPENAI_RESPONSES` by the rows that serve `responses` — OpenAI's `/responses`, Azure's v1
`/openai/v1/responses` — while every other row, and a model configured as lacking `responses`, has a Responses
client translated to Chat Completions); quirks (Azure's deployment URLs, fields a provider rejects) come from
the provider's catalog row, not from branches on its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

import msgspec

from sidestep.config.model import KeyConfig, ProviderConfig
from sidestep.core.model import Usage as CanonicalUsage
from sidestep.errors import BadRequest, UpstreamError
from sidestep.formats.base import Converses, Format, ReadsEmbeddingInputs, Wire
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.openai_chat.wire import Envelope, Usage
from sidestep.formats.openai_completions import OPENAI_COMPLETIONS
from sidestep.formats.openai_responses import OPENAI_RESPONSES
from sidestep.formats.openai_responses.wire import ResponsesEnvelope, ResponsesUsage
from sidestep.formats.passthrough import (
    MULTIPART,
    OPENAI_IMAGES,
    OPENAI_MODERATIONS,
    OPENAI_SPEECH,
    OPENAI_TRANSCRIPTIONS,
    RERANK,
    Multipart,
)
from sidestep.formats.translate import translate_request
from sidestep.providers.base import classify_http_error, no_answer
from sidestep.providers.catalog import ProviderSpec
from sidestep.providers.relayed import relayed_usage
from sidestep.routing.provider import speaks
from sidestep.transport.types import Timeouts, UpstreamRequest

__all__ = ["OpenAICompatProvider", "Usage"]


_PATHS = {
    "chat": "/chat/completions",
    "embeddings": "/embeddings",
    "messages": "/chat/completions",
    "responses": "/chat/completions",  # translated: a Responses client served by Chat Completions
    "completions": "/completions",
    "converse": "/chat/completions",  # translated: a Bedrock (boto3) client
    # Relayed as they are (`formats.passthrough`), where the catalog row says the API serves them (`serves`).
    "rerank": "/rerank",
    "moderations": "/moderations",
    "images": "/images/generations",
    "transcriptions": "/audio/transcriptions",
    "speech": "/audio/speech",
}
_RELAYED = frozenset({"rerank", "moderations", "images", "transcriptions", "speech"})
_LISTED = _RELAYED | {"completions"}  # operations only the APIs whose catalog row lists them (`serves`) have
_NATIVE_RESPONSES = "/responses"  # the rows that serve `responses` speak the Responses API upstream
# A Responses answer that may have no output yet: cut short, or a `background` one still running at the provider.
_UNFINISHED = ("incomplete", "queued", "in_progress")
# Operations served in a format other than chat's (`formats`, what the executor labels an answer with): the legacy
# completions, and the relayed-only APIs in their own shape (so what they serve is the client's format: the byte
# relay, never a translation); the Responses API too where the row speaks it. `_OWN`: those a request is written
# in (`build`; a relayed-only API's body goes as it came, and its format is a `Wire`, never a `Format`).
_OWN: Mapping[str, Format] = MappingProxyType({"completions": OPENAI_COMPLETIONS})
_OWN_WITH_RESPONSES: Mapping[str, Format] = MappingProxyType({**_OWN, "responses": OPENAI_RESPONSES})
_FORMATS: Mapping[str, Wire] = MappingProxyType(
    {
        **_OWN,
        "rerank": RERANK,
        "moderations": OPENAI_MODERATIONS,
        "images": OPENAI_IMAGES,
        "transcriptions": OPENAI_TRANSCRIPTIONS,
        "speech": OPENAI_SPEECH,
    }
)
_WITH_RESPONSES: Mapping[str, Wire] = MappingProxyType({**_FORMATS, "responses": OPENAI_RESPONSES})
# Fields only sidestep understands: they never travel upstream.
GATEWAY_FIELDS = ("fallbacks", "models", "route")


def _absent(raw: msgspec.Raw) -> bool:
    """A field missing, null or empty (`[]`, `{}`); looked at without copying a long answer."""
    return len(raw) <= 4 and bytes(raw).replace(b" ", b"") in (b"", b"null", b"[]", b"{}")


class OpenAICompatProvider:
    format = OPENAI_CHAT

    def __init__(self, config: ProviderConfig, spec: ProviderSpec) -> None:
        self.name = config.name
        self.config = config
        self.spec = spec
        # Operations served in a format of their own (`routing.provider.speaks`), the Responses API among them
        # where the row (or the config's `serves`) says the API speaks it.
        self._responses = "responses" in (spec.serves if config.serves is None else config.serves)
        self.formats = _WITH_RESPONSES if self._responses else _FORMATS
        self._own = _OWN_WITH_RESPONSES if self._responses else _OWN
        self._decode_responses = msgspec.json.Decoder(ResponsesEnvelope).decode
        self._encode = msgspec.json.Encoder().encode
        self._envelope = msgspec.json.Decoder(Envelope).decode
        self._static_headers = [
            ("content-type", "application/json"),
            ("accept-encoding", "identity"),
            *config.headers,
        ]
        self._urls = {op: self._url_template(op) for op in _PATHS}
        self._drop = spec.drop_fields + config.drop_fields  # fields this provider rejects
        self._azure = spec.url_style == "azure"  # the deployment (model) is a path segment
        self._header_sets: dict[tuple[str, bool, bool], list[tuple[str, str]]] = {}  # (key, keyless, stream)
        stages = config.timeouts
        self._timeouts = Timeouts(connect=stages.connect, headers=stages.headers, read=stages.idle)

    def supports(self, operation: str) -> bool:
        if operation in _LISTED:  # the catalog row (or the config's `serves`) says whether the API has it
            return operation in (self.spec.serves if self.config.serves is None else self.config.serves)
        return operation in _PATHS and (operation != "embeddings" or self.spec.embeddings)

    def build(
        self, operation: str, model: str, body: dict[str, Any], key: KeyConfig, source: Converses | None
    ) -> UpstreamRequest:
        if source is None:  # a relayed-only API (`formats.passthrough`): its body goes as it came
            return self._relayed(operation, model, body, key)
        if operation in self._own:  # an API of its own here (chat and embeddings have none: no call at all)
            wire = speaks(self, self._own, operation, model)
            # A model lacking its operation's own API (`lacks: [responses]`) is sent Chat Completions.
            url = self._urls["chat"] if wire is OPENAI_CHAT else self._urls[operation]
        else:
            wire, url = OPENAI_CHAT, self._urls[operation]
        if source is not OPENAI_CHAT and operation == "embeddings":  # another format's texts to embed
            payload = _embeddings(body, source)
        elif source is not wire:  # another client format: translate through the canonical model
            payload = translate_request(body, source, wire)
        else:
            payload = dict(body)
            if "models" in payload or "fallbacks" in payload or "route" in payload:  # GATEWAY_FIELDS, rarely sent
                for name in GATEWAY_FIELDS:
                    payload.pop(name, None)
        if self._drop:
            for name in self._drop:
                payload.pop(name, None)
        payload["model"] = model
        stream = payload.get("stream") is True
        headers = self._header_sets.get((key.name, key.secret is None, stream))
        if headers is None:
            headers = self._header_sets[(key.name, key.secret is None, stream)] = self._headers(key, stream)
        if self._azure:
            url = url.replace("{model}", quote(model, safe=""))  # one path segment, whatever the client wrote
        return UpstreamRequest("POST", url, list(headers), self._encode(payload), self._timeouts)

    def _headers(self, key: KeyConfig, stream: bool) -> list[tuple[str, str]]:
        """The headers every request with this key (and stream mode) carries: built once per key."""
        headers = list(self._static_headers)
        if stream:
            headers.append(("accept", "text/event-stream"))
        if key.secret is not None:
            if self.spec.auth == "api-key":
                headers.append(("api-key", key.secret.reveal()))
            elif self.spec.auth == "bearer":
                headers.append(("authorization", "Bearer " + key.secret.reveal()))
        return headers

    def _relayed(self, operation: str, model: str, body: dict[str, Any], key: KeyConfig) -> UpstreamRequest:
        """A relayed-only API: the client's body with the model rewritten (a multipart body byte for byte but
        the model field's value), under the client's content type."""
        multipart = body.get(MULTIPART)
        headers = self._headers(key, body.get("stream") is True)
        if isinstance(multipart, Multipart):  # only a multipart parse puts one there (a JSON key holds raw JSON)
            headers[0] = ("content-type", multipart.content_type)
            payload = multipart.for_model(model)
        else:
            fields = {name: value for name, value in body.items() if name not in GATEWAY_FIELDS}
            fields["model"] = model
            payload = self._encode(fields)
        url = self._urls[operation]
        if self.spec.url_style == "azure":
            url = url.replace("{model}", quote(model, safe=""))
        return UpstreamRequest("POST", url, headers, payload, self._timeouts)

    def inspect(self, operation: str, body: bytes) -> Usage | CanonicalUsage | ResponsesUsage | None:
        """Check a successful answer is well-formed JSON with an answer in it, and read its usage; a malformed
        body, or a 200 that carries `error` or no `choices` (`data`, `output`), fails over."""
        if operation != "chat":  # chat first: nearly every answer is one
            if operation in _RELAYED:
                return relayed_usage(self.name, operation, body)
            if operation == "responses" and self._responses:
                envelope_of_responses = self._responses_answer(body)
                if envelope_of_responses is not None:
                    return envelope_of_responses.usage
        try:
            envelope = self._envelope(body)
        except msgspec.DecodeError as exc:
            raise UpstreamError(f"{self.name} returned a malformed {operation} body: {exc}", status=502) from exc
        answer = envelope.choices if operation != "embeddings" else envelope.data
        # Lengths first: the usual answer is long and carries no error, so neither needs a closer look.
        if (len(answer) <= 4 and _absent(answer)) or (len(envelope.error) and not _absent(envelope.error)):
            raise no_answer(self.name, body, "`data`" if operation == "embeddings" else "`choices`")
        return envelope.usage

    def _responses_answer(self, body: bytes) -> ResponsesEnvelope | None:
        """A Responses answer checked (an `output`, no `error`, not `failed`), with its usage; None when the
        body is not a Responses object (a model lacking `responses` answered in Chat Completions: `inspect`
        goes on with that shape)."""
        try:
            envelope = self._decode_responses(body)
        except msgspec.DecodeError as exc:
            raise UpstreamError(f"{self.name} returned a malformed responses body: {exc}", status=502) from exc
        if envelope.object != "response":
            return None
        if (_absent(envelope.output) and envelope.status not in _UNFINISHED) or not _absent(envelope.error):
            raise no_answer(self.name, body, "`output`")
        if envelope.status == "failed":
            raise no_answer(self.name, body, "a response that did not fail")
        return envelope

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return classify_http_error(status, headers, body, provider=self.name)

    def _url_template(self, operation: str) -> str:
        base = self.config.base_url
        if operation == "responses" and self._responses:
            # Azure's Responses API is its v1 API: one path for every deployment, named by the body's model.
            return base + ("/openai/v1" if self.spec.url_style == "azure" else "") + _NATIVE_RESPONSES
        if self.spec.url_style == "azure":
            # Azure names the deployment in the path; the deployment is what targets call the "model".
            version = self.config.api_version or self.spec.default_api_version or ""
            return f"{base}/openai/deployments/{{model}}{_PATHS[operation]}?api-version={version}"
        return base + _PATHS[operation]


def _embeddings(body: dict[str, Any], source: Converses) -> dict[str, Any]:
    if not isinstance(source, ReadsEmbeddingInputs):
        raise BadRequest(f"{source.name} embeddings cannot be served by an OpenAI-compatible target.")
    texts, dims = source.embedding_request(body)
    return {"input": texts, "dimensions": dims} if dims is not None else {"input": texts}
