"""The adapter for Cohere's Chat v2 API (`POST /v2/chat`), reached from either client format through the
canonical model. 429 and 5xx fail over; "too many tokens" is a context-window error."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sidestep.config.model import KeyConfig, ProviderConfig
from sidestep.core.model import Usage
from sidestep.errors import BadRequest
from sidestep.formats import cohere_v2 as wire
from sidestep.formats.base import Converses, ReadsEmbeddingInputs, Wire
from sidestep.formats.body import materialize
from sidestep.formats.cohere_v2 import COHERE_V2
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.passthrough import RERANK
from sidestep.formats.translate import to_canonical
from sidestep.providers.base import NativeAdapter, not_relayed
from sidestep.providers.catalog import ProviderSpec
from sidestep.providers.openai_compat import GATEWAY_FIELDS
from sidestep.providers.relayed import relayed_usage
from sidestep.transport.types import UpstreamRequest

__all__ = ["CohereProvider"]


class CohereProvider(NativeAdapter):
    format = COHERE_V2
    operations = frozenset({"chat", "messages", "responses", "converse", "embeddings", "rerank"})
    formats: Mapping[str, Wire] = MappingProxyType({"rerank": RERANK})  # relayed in its own (Cohere's) shape

    def __init__(self, config: ProviderConfig, spec: ProviderSpec) -> None:
        super().__init__(config, spec)
        self._static_headers = [("content-type", "application/json"), ("accept-encoding", "identity"), *config.headers]
        base = config.base_url.removesuffix("/v2")
        self._url = base + "/v2/chat"
        self._embed_url = base + "/v2/embed"
        self._rerank_url = base + "/v2/rerank"
        self._input_type = config.setting("input_type") or "search_document"

    def build(
        self, operation: str, model: str, body: dict[str, Any], key: KeyConfig, source: Converses | None
    ) -> UpstreamRequest:
        if operation == "embeddings":  # another format's texts to embed, or OpenAI's body as it came
            if source is not None and source is not OPENAI_CHAT and isinstance(source, ReadsEmbeddingInputs):
                texts, dims = source.embedding_request(body)
                body = {"input": texts, "dimensions": dims}
            return self._embed(materialize(body), model, key)
        if source is None:  # a relayed-only API: rerank, the one Cohere serves (its own shape), the model rewritten
            if operation != "rerank":
                raise not_relayed(self.name, operation)
            fields = {name: value for name, value in body.items() if name not in GATEWAY_FIELDS}
            fields["model"] = model
            return UpstreamRequest("POST", self._rerank_url, self._keyed(key), self._encode(fields), self._timeouts)
        request = to_canonical(source, body)
        request.model = model
        headers = list(self._static_headers)
        if key.secret is not None:
            headers.append(("authorization", f"Bearer {key.secret.reveal()}"))
        if request.stream:
            headers.append(("accept", "text/event-stream"))
        return UpstreamRequest(
            "POST", self._url, headers, self._encode(self.format.write_request(request)), self._timeouts
        )

    def inspect(self, operation: str, body: bytes) -> Usage:
        if operation == "rerank":
            return relayed_usage(self.name, operation, body)
        if operation == "embeddings":
            meta = self._object(body, operation, "embeddings").get("meta") or {}
            return Usage(input=int((meta.get("billed_units") or {}).get("input_tokens") or 0))
        return wire.usage_of(self._object(body, operation, "message").get("usage"))

    def _embed(self, body: dict[str, Any], model: str, key: KeyConfig) -> UpstreamRequest:
        try:
            payload = wire.embeddings_request(body, model, self._input_type)
        except ValueError as exc:
            raise BadRequest(str(exc), param="input") from exc
        headers = self._keyed(key)
        return UpstreamRequest("POST", self._embed_url, headers, self._encode(payload), self._timeouts)

    def _keyed(self, key: KeyConfig) -> list[tuple[str, str]]:
        headers = list(self._static_headers)
        if key.secret is not None:
            headers.append(("authorization", f"Bearer {key.secret.reveal()}"))
        return headers
