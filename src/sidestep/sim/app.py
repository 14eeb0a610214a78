"""The provider simulator: an HTTP handler that answers like each supported provider and fails on demand.

Routes: OpenAI (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/responses`, Azure deployment
paths and Azure's v1 `/openai/v1/responses`), Anthropic
(`/v1/messages`, `/v1/messages/count_tokens`), Gemini (`/v1beta/models/{model}:generateContent`,
`:streamGenerateContent`, `:countTokens`, `:embedContent`, `:batchEmbedContents`; Vertex AI's
`/v1/projects/…/publishers/google/models/…` too), Bedrock (`/model/{id}/converse`, `/converse-stream`, `/invoke`,
`/invoke-with-response-stream`), Cohere (`/v2/chat`, `/v2/rerank`), OpenAI's relayed-only APIs (`/v1/moderations`,
`/v1/images/generations`, `/v1/audio/transcriptions` as multipart, `/v1/audio/speech` as streamed audio) and
`/v1/rerank` as vLLM serves it (`media.py`), and the OAuth token endpoints of Google and Entra ID (`auth.py`). Wire
formats live in one module each; the fault machinery here is shared, so a fault plays the same way in every dialect.

The fault for a request is chosen, in order, from the `x-sim-fault` header, a `model@spec` suffix on the
model name, the runtime fault (`set_fault`, or `POST /_sim/fault`), then the scenario. Every request is
recorded in `received` so tests can assert on exactly what the gateway sent.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from sidestep.server.protocol import HttpServer, start_server
from sidestep.server.types import AbortConnection, Request, Response, StreamingResponse
from sidestep.sim import anthropic as claude
from sidestep.sim import auth, bedrock, gemini, media
from sidestep.sim import cohere as coral
from sidestep.sim import openai as wire
from sidestep.sim import responses as responses_api
from sidestep.sim.faults import FaultSpec, Scenario, parse_fault
from sidestep.sim.paths import bearer, gemini_target, operation_of

__all__ = ["RECEIVED_LIMIT", "Received", "Simulator", "start_simulator"]

RECEIVED_LIMIT = 10_000  # requests kept in `Simulator.received`
RESPONSES_LIMIT = 10_000  # response ids remembered for `previous_response_id`
_JSON = [("content-type", "application/json")]
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_HEALTHY = FaultSpec()
_GEMINI_PREFIXES = ("/v1beta/models/", "/v1/models/", "/v1/projects/")  # the last: Vertex AI


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    at: float
    query: str = ""
    raw: bytes = b""  # a multipart body as it came (JSON bodies are in `body`)


@dataclass(frozen=True, slots=True)
class _Dialect:
    """How one wire format renders errors and broken answers; the fault machinery is shared."""

    render: Callable[[int, str | None, float | None], bytes]  # status, message, retry_after -> error body
    stream_error: Callable[[str | None], bytes]  # the in-stream error event
    malformed_body: bytes
    malformed_event: bytes
    request_id: str = "x-request-id"  # the response header naming the request
    error_headers: Callable[[int], list[tuple[str, str]]] | None = None  # e.g. Bedrock's x-amzn-errortype

    def error(self, status: int, message: str | None = None, retry_after: float | None = None) -> Response:
        extra = self.error_headers(status) if self.error_headers is not None else []
        return Response(status, self.render(status, message, retry_after), [*_JSON, *extra])


_OPENAI = _Dialect(
    lambda status, message, _: wire.error_body(status, message),
    lambda message: b"data: " + wire.error_body(500, message) + b"\n\n",
    b'{"id": "chatcmpl-broken", "choices": [',
    b"data: {not json\n\n",
)
_RESPONSES = _Dialect(
    lambda status, message, _: wire.error_body(status, message),
    responses_api.stream_error,
    responses_api.MALFORMED_BODY,
    responses_api.MALFORMED_EVENT,
)
_ANTHROPIC = _Dialect(
    lambda status, message, _: claude.error_body(status, message),
    claude.stream_error,
    claude.MALFORMED_BODY,
    claude.MALFORMED_EVENT,
    "request-id",
)
_GEMINI = _Dialect(gemini.error_body, gemini.stream_error, gemini.MALFORMED_BODY, gemini.MALFORMED_EVENT)
_COHERE = _Dialect(
    lambda status, message, _: coral.error_body(status, message),
    coral.stream_error,
    coral.MALFORMED_BODY,
    coral.MALFORMED_EVENT,
)
_BEDROCK = _Dialect(
    lambda status, message, _: bedrock.error(status, message)[0],
    bedrock.stream_error,
    bedrock.MALFORMED_BODY,
    bedrock.frame({":event-type": "contentBlockDelta", ":message-type": "event"}, b"{not json"),
    "x-amzn-requestid",
    lambda status: bedrock.error(status)[1],
)
# InvokeModelWithResponseStream: the same errors; a malformed event is a `chunk` whose bytes are not JSON.
_BEDROCK_INVOKE = _Dialect(
    _BEDROCK.render,
    bedrock.stream_error,
    bedrock.MALFORMED_BODY,
    bedrock.invoke_chunk(b"{not json"),
    "x-amzn-requestid",
    _BEDROCK.error_headers,
)


_BEDROCK_ACTIONS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream")
_AUDIO = _Dialect(_OPENAI.render, lambda message: b"", b"", b"")  # audio has no error event: faults cut it
_MEDIA = {
    "/moderations": "moderations",
    "/images/generations": "images",
    "/audio/transcriptions": "transcriptions",
    "/audio/speech": "speech",
    "/rerank": "rerank",
}

_NOT_CHAT = "This is not a chat model and thus not supported in the v1/chat/completions endpoint."


class Simulator:
    def __init__(
        self,
        *,
        name: str = "sim",
        scenario: Scenario | None = None,
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
        api_keys: Collection[str] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        models: Collection[str] | None = None,
    ) -> None:
        """`models`: the model names this provider serves (OpenAI and Anthropic dialects); any other is
        answered 404 as the real APIs do. None: every name is served."""
        self.name = name
        self.models = frozenset(models) if models is not None else None
        self.scenario = scenario
        self.clock = clock
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        # The most recent requests, oldest first; bounded (a long `sidestep sim` or benchmark run must not
        # grow forever): past RECEIVED_LIMIT the older half is dropped.
        self.received: list[Received] = []
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._seed = seed
        self._fault: FaultSpec | None = None
        self._started = clock()
        self._count = 0
        self.response_ids: dict[str, None] = {}  # the responses made, oldest first (bounded: RESPONSES_LIMIT)
        self.token_lifetime = 3600  # seconds, for tokens from the simulated OAuth endpoints
        self.tokens_issued = 0

    def set_fault(self, spec: str | FaultSpec | None) -> None:
        self._fault = parse_fault(spec) if isinstance(spec, str) else spec

    def reset(self) -> None:
        self.received.clear()
        self._count = 0
        self._rng = random.Random(self._seed)
        self._started = self.clock()

    async def handle(self, request: Request) -> Response | StreamingResponse:
        body = _json(request.body)
        if request.path.startswith("/_sim/"):  # control traffic is not provider traffic: not recorded
            return self._control(request, body)
        multipart = request.headers.get("content-type", "").startswith("multipart/")
        raw = request.body if multipart else b""
        received = Received(request.method, request.path, request.headers, body, self.clock(), request.query, raw)
        self.received.append(received)
        if len(self.received) > RECEIVED_LIMIT:
            del self.received[: RECEIVED_LIMIT // 2]
        if request.path in ("/v1/messages", "/v1/messages/count_tokens") and request.method == "POST":
            return await self._anthropic(request, body, counting=request.path.endswith("/count_tokens"))
        if request.path.startswith(_GEMINI_PREFIXES) and ":" in request.path:  # models/{model}:{method}
            return await self._gemini(request, body)
        if auth.is_token_path(request.path) and request.method == "POST":
            return await self._token(request)
        if request.path.startswith("/model/"):
            return await self._bedrock(request, body)
        if request.path in ("/v2/chat", "/v2/embed"):
            return await self._cohere(request, body)
        path = request.path[3:] if request.path.startswith("/v1/") else request.path
        if path in _MEDIA or request.path == "/v2/rerank":
            return await self._media(request, body, _MEDIA.get(path, "rerank"))
        operation, deployment = operation_of(path)
        if path in ("/health", "/v1/health") and request.method == "GET":
            return Response(200, b'{"status":"ok"}', list(_JSON))
        if path in ("/models", "/v1/models") and request.method == "GET":
            return Response(200, _encode({"object": "list", "data": []}), list(_JSON))
        if operation is None or request.method != "POST":
            return _error(404, f"Unknown request URL: {request.method} {request.path}.")
        if not self._authorised(bearer(request.headers) or request.headers.get("api-key", "")):
            return _error(401)
        if body is None:
            return _error(400, "We could not parse the JSON body of your request.")
        return await self._answer(operation, body, deployment, request.headers)

    async def _answer(
        self, operation: str, body: dict[str, Any], deployment: str | None, headers: dict[str, str]
    ) -> Response | StreamingResponse:
        raw_model = deployment or body.get("model")
        if not isinstance(raw_model, str) or not raw_model:
            return _error(400, "you must provide a model parameter", "model")
        model, fault = self._fault_for(raw_model, headers)
        if self.models is not None and model not in self.models:
            return _error(404, f"The model `{model}` does not exist or you do not have access to it.", "model")
        if operation == "chat" and not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is a required property", "messages")
        if operation == "chat" and "embed" in model.lower():  # as OpenAI answers a chat with an embedding model
            return _error(404, _NOT_CHAT, "model")
        failed = await self._before_headers(fault, _RESPONSES if operation == "responses" else _OPENAI)
        if failed is not None:
            return failed
        if operation == "responses":
            return self._responses(body, model, fault)
        if operation == "embeddings":
            return Response(200, wire.embeddings(body, model), self._headers())
        if operation == "completions":
            return self._legacy(body, model, fault)
        reply = _filtered(wire.plan_reply(body, self.name), fault)
        ident = "chatcmpl-" + self._digest(24)
        if body.get("stream") is True:
            events = list(wire.chunk_events(body, model, reply, ident, fault.chunks or 8))
            return self._streaming(events, 1, fault, _OPENAI)
        return self._complete(wire.completion(body, model, reply, ident), fault, _OPENAI)

    def _legacy(self, body: dict[str, Any], model: str, fault: FaultSpec) -> Response | StreamingResponse:
        """`POST /v1/completions`, after the faults that come before the headers."""
        problem = wire.legacy_problem(body)
        if problem is not None:
            return _error(400, problem, "prompt" if "prompt" in problem else "n")
        ident = "cmpl-" + self._digest(24)
        if body.get("stream") is True:
            return self._streaming(
                wire.legacy_events(body, model, self.name, ident, fault.chunks or 8), 0, fault, _OPENAI
            )
        finish = "content_filter" if fault.blocked or fault.blocked_output else None
        return self._complete(wire.legacy_completion(body, model, self.name, ident, finish), fault, _OPENAI)

    def _responses(self, body: dict[str, Any], model: str, fault: FaultSpec) -> Response | StreamingResponse:
        """`POST /v1/responses`, after the faults that come before the headers."""
        problem = responses_api.problem(body)
        previous = body.get("previous_response_id")
        if problem is None and previous is not None and previous not in self.response_ids:
            problem = f"Previous response with id '{previous}' not found."
        if problem is not None:
            return _error(400, problem, "previous_response_id" if previous else "input")
        ident = self._digest(24)
        self.response_ids[f"resp_{ident}"] = None
        if len(self.response_ids) > RESPONSES_LIMIT:
            del self.response_ids[next(iter(self.response_ids))]
        reply = _filtered(responses_api.plan(body, self.name), fault)
        if body.get("stream") is True:
            events, first = responses_api.events(body, model, reply, ident, fault.chunks or 8)
            return self._streaming(events, first, fault, _RESPONSES)
        return self._complete(responses_api.response(body, model, reply, ident), fault, _RESPONSES)

    async def _anthropic(
        self, request: Request, body: dict[str, Any] | None, *, counting: bool
    ) -> Response | StreamingResponse:
        headers = request.headers
        if not self._authorised(headers.get("x-api-key") or bearer(headers)):
            return _ANTHROPIC.error(401)
        if not headers.get("anthropic-version"):
            return _ANTHROPIC.error(400, "anthropic-version: header is required")
        if body is None:
            return _ANTHROPIC.error(400, "There was an error parsing the body of your request: not valid JSON.")
        problem = claude.invalid(body, counting=counting)
        if problem is not None:
            return _ANTHROPIC.error(400, problem)
        model, fault = self._fault_for(body["model"], headers)
        if self.models is not None and model not in self.models:
            return _ANTHROPIC.error(404, f"model: {model}")
        failed = await self._before_headers(fault, _ANTHROPIC)
        if failed is not None:
            return failed
        if counting:
            return Response(200, _encode({"input_tokens": claude.count_tokens(body)}), self._headers("request-id"))
        reply = claude.plan_reply(body, self.name, _safety(fault))
        ident = "msg_" + self._digest(24)
        if body.get("stream") is True:
            events, first = claude.stream_events(model, reply, ident, fault.chunks or 8)
            return self._streaming(events, first, fault, _ANTHROPIC)
        return self._complete(claude.message(model, reply, ident), fault, _ANTHROPIC)

    async def _gemini(self, request: Request, body: dict[str, Any] | None) -> Response | StreamingResponse:
        raw_model, method = gemini_target(request.path)
        if request.method != "POST" or method not in gemini.METHODS:
            return _GEMINI.error(404, f"Method not found: {request.method} {request.path}")
        query = urllib.parse.parse_qs(request.query)
        if request.path.startswith("/v1/projects/"):  # Vertex AI: an OAuth token, not a key
            if not bearer(request.headers).startswith("ya29."):
                return _GEMINI.error(401, "Request had invalid authentication credentials.")
        else:
            key = request.headers.get("x-goog-api-key") or next(iter(query.get("key", [])), "")
            if not self._authorised(key):
                status, denied = gemini.key_error(missing=not key)
                return Response(status, denied, list(_JSON))
        if body is None:
            return _GEMINI.error(400, "Invalid JSON payload received. Unexpected token.")
        problem = gemini.invalid(body, method, raw_model)
        if problem is not None:
            return _GEMINI.error(400, problem)
        model, fault = self._fault_for(raw_model, request.headers)
        failed = await self._before_headers(fault, _GEMINI)
        if failed is not None:
            return failed
        if method == "countTokens":
            return Response(200, gemini.count_tokens(body), self._headers())
        if method in ("embedContent", "batchEmbedContents"):
            return Response(200, gemini.embeddings(body), self._headers())
        reply = gemini.plan_reply(body, self.name, _safety(fault))
        ident = self._digest(22)
        if method == "streamGenerateContent":
            sse = query.get("alt") == ["sse"]
            events, first = gemini.stream_events(model, reply, ident, fault.chunks or 8, sse=sse)
            return self._streaming(events, first, fault, _GEMINI, "text/event-stream" if sse else "application/json")
        return self._complete(gemini.response(model, reply, ident), fault, _GEMINI)

    async def _bedrock(self, request: Request, body: dict[str, Any] | None) -> Response | StreamingResponse:
        raw_model, action = bedrock.model_from_path(request.path)
        if request.method != "POST" or action not in _BEDROCK_ACTIONS:
            return _BEDROCK.error(404, f"Unknown operation {request.method} {request.path}")
        denied = bedrock.check_auth(
            request.headers, request.method, request.path, request.query, request.body, self.api_keys
        )
        if denied is not None:
            return _BEDROCK.error(*denied)
        if body is None:
            return _BEDROCK.error(400, "Malformed input request: the body is not valid JSON.")
        invoking = action.startswith("invoke")
        problem = bedrock.invalid_invoke(body) if invoking else bedrock.invalid(body)
        if problem is not None:
            return _BEDROCK.error(400, problem)
        model, fault = self._fault_for(raw_model, request.headers)
        failed = await self._before_headers(fault, _BEDROCK)
        if failed is not None:
            return failed
        if invoking:  # a Claude model's own answer, as Bedrock's InvokeModel gives it (or streams it, framed)
            own, ident = claude.plan_reply(body, self.name, _safety(fault)), "msg_" + self._digest(24)
            if action == "invoke":
                return self._complete(claude.message(model, own, ident), fault, _BEDROCK)
            payloads = claude.stream_payloads(model, own, ident, fault.chunks or 8)
            events, first = bedrock.invoke_stream_events(*payloads)
            return self._streaming(events, first, fault, _BEDROCK_INVOKE, "application/vnd.amazon.eventstream")
        reply = bedrock.plan_reply(body, self.name, _safety(fault))
        if action == "converse-stream":
            events, first = bedrock.stream_events(reply, fault.chunks or 8)
            return self._streaming(events, first, fault, _BEDROCK, "application/vnd.amazon.eventstream")
        return self._complete(bedrock.converse(reply), fault, _BEDROCK)

    async def _token(self, request: Request) -> Response:
        fault = self._fault
        if fault is not None and fault.status is not None:
            return Response(fault.status, _encode({"error": "temporarily_unavailable"}), list(_JSON))
        self.tokens_issued += 1
        if request.path == "/token":
            status, body = auth.google_token(request.body, self.tokens_issued, self.token_lifetime)
        else:
            status, body = auth.microsoft_token(request.body, self.tokens_issued, self.token_lifetime, self.api_keys)
        return Response(status, body, list(_JSON))

    async def _cohere(self, request: Request, body: dict[str, Any] | None) -> Response | StreamingResponse:
        if request.method != "POST":
            return _COHERE.error(404, f"Unknown operation {request.method} {request.path}")
        if not self._authorised(bearer(request.headers)):
            return _COHERE.error(401)
        if body is None:
            return _COHERE.error(400, "invalid request: the body is not valid JSON")
        problem = coral.invalid(body) if request.path == "/v2/chat" else None
        if problem is not None:
            return _COHERE.error(400, problem)
        _model, fault = self._fault_for(str(body.get("model", "")), request.headers)
        failed = await self._before_headers(fault, _COHERE)
        if failed is not None:
            return failed
        if request.path == "/v2/embed":
            status, answer = coral.embed(body)
            return Response(status, answer, self._headers())
        reply = coral.plan_reply(body, self.name, _safety(fault))
        ident = self._digest(32)
        if body.get("stream") is True:
            events, first = coral.stream_events(reply, ident, fault.chunks or 8)
            return self._streaming(events, first, fault, _COHERE)
        return self._complete(coral.chat(reply, ident), fault, _COHERE)

    async def _media(
        self, request: Request, body: dict[str, Any] | None, operation: str
    ) -> Response | StreamingResponse:
        """Moderations, images, transcriptions, speech (OpenAI's) and rerank (Cohere's at `/v2/rerank`)."""
        cohere = request.path == "/v2/rerank"
        dialect = _COHERE if cohere else _OPENAI
        if request.method != "POST":
            return dialect.error(404, f"Unknown request URL: {request.method} {request.path}.")
        if not self._authorised(bearer(request.headers)):
            return dialect.error(401)
        fields = None
        if operation == "transcriptions":
            fields = media.form_fields(request.body, request.headers.get("content-type", ""))
            if fields is None or "file" not in fields or not fields.get("model"):
                return dialect.error(400, "a multipart/form-data body with 'file' and 'model' is required")
            body = {"model": fields["model"].decode("utf-8", "replace")}
        elif body is None:
            return dialect.error(400, "We could not parse the JSON body of your request.")
        problem = media.invalid(operation, body)
        if problem is not None:
            return dialect.error(400, problem)
        model, fault = self._fault_for(str(body.get("model", "")), request.headers)
        if self.models is not None and model not in self.models:
            return dialect.error(404, f"The model `{model}` does not exist or you do not have access to it.")
        failed = await self._before_headers(fault, dialect)
        if failed is not None:
            return failed
        if operation == "speech":
            pieces, kind = media.speech(body, self.name)
            return self._streaming(pieces, 0, fault, _AUDIO, kind)
        if operation == "transcriptions" and fields is not None:
            payload, kind = media.transcription(fields, self.name)
            response = self._complete(payload, fault, dialect)
            response.headers[0] = ("content-type", kind)
            return response
        if operation == "rerank":
            payload = media.rerank(body, model, self.name, cohere)
        elif operation == "images":
            payload = media.image(body, model, self.name, int(time.time()))
        else:
            payload = media.moderation(body, model, self.name)
        return self._complete(payload, fault, dialect)

    def _fault_for(self, raw_model: str, headers: dict[str, str]) -> tuple[str, FaultSpec]:
        """Split `model@spec`, count the request, and choose its fault (a healthy spec when none applies)."""
        model, _, suffix = raw_model.partition("@")
        self._count += 1
        return model, self._choose(headers.get("x-sim-fault"), suffix, model) or _HEALTHY

    def _digest(self, size: int) -> str:
        return hashlib.sha256(f"{self.name}{self._count}".encode()).hexdigest()[:size]

    def _choose(self, header: str | None, suffix: str, model: str) -> FaultSpec | None:
        if header:
            fault: FaultSpec | None = parse_fault(header)
        elif suffix:
            fault = parse_fault(suffix)
        elif self._fault is not None:
            fault = self._fault
        elif self.scenario is not None:
            fault = self.scenario.fault_at(self.clock() - self._started, model, self._count)
        else:
            return None
        if fault is not None and fault.rate < 1.0 and self._rng.random() >= fault.rate:
            return None
        return fault

    async def _before_headers(self, fault: FaultSpec, dialect: _Dialect) -> Response | None:
        if fault.latency:
            await self._sleep(fault.latency)
        if fault.hang:
            await asyncio.Event().wait()  # until the client gives up and the server cancels us
        if fault.reset:
            raise AbortConnection
        if fault.status is not None:
            response = dialect.error(fault.status, fault.message, fault.retry_after)
            if fault.retry_after is not None:
                response.headers.append(("retry-after", _retry_after(fault)))
            return response
        return None

    def _complete(self, payload: bytes, fault: FaultSpec, dialect: _Dialect) -> Response:
        if fault.error_200:
            payload = dialect.render(500, fault.message, None)
        elif fault.malformed:
            payload = dialect.malformed_body
        return Response(200, payload, self._headers(dialect.request_id))

    def _streaming(
        self, events: list[bytes], first: int, fault: FaultSpec, dialect: _Dialect, kind: str = "text/event-stream"
    ) -> StreamingResponse:
        return StreamingResponse(
            200,
            self._paced(events, first, fault, dialect),
            [("content-type", kind), *self._headers(dialect.request_id)[1:]],
        )

    async def _paced(
        self, events: list[bytes], first: int, fault: FaultSpec, dialect: _Dialect
    ) -> AsyncIterator[bytes]:
        """Play a stream's events with the fault's timing; `first` is the first content event (TTFT lands there)."""
        for index, event in enumerate(events):
            if fault.drop_after is not None and index >= fault.drop_after:
                raise AbortConnection
            if fault.drop_mid_event is not None and index >= fault.drop_mid_event:
                yield event[: len(event) // 2]  # a line cut in two: what a client must never be left holding
                raise AbortConnection
            if fault.stream_error_after is not None and index >= fault.stream_error_after:
                yield dialect.stream_error(fault.message)
                return
            if index == first and fault.ttft:
                await self._sleep(fault.ttft)
            elif index > first and fault.chunk_delay:  # pacing after the first content; ttft covers the first
                await self._sleep(fault.chunk_delay)
            yield dialect.malformed_event if fault.malformed and index == first else event

    def _authorised(self, key: str | None) -> bool:
        return self.api_keys is None or key in self.api_keys

    def _headers(self, request_id: str = "x-request-id") -> list[tuple[str, str]]:
        return [("content-type", "application/json"), (request_id, f"req_sim_{self.name}_{self._count}")]

    def _control(self, request: Request, body: dict[str, Any] | None) -> Response:
        if request.path == "/_sim/fault" and request.method == "POST":
            spec = (body or {}).get("fault")
            try:
                self.set_fault(spec if isinstance(spec, str) else None)
            except ValueError as exc:
                return _error(400, str(exc))
            return Response(200, _encode({"fault": self._fault.describe() if self._fault else None}), list(_JSON))
        if request.path == "/_sim/received" and request.method == "GET":
            items = [{"method": r.method, "path": r.path, "body": r.body, "at": r.at} for r in self.received]
            return Response(200, _encode(items), list(_JSON))
        return _error(404, f"Unknown control path {request.path}.")


def _safety(fault: FaultSpec) -> Literal["prompt", "output"] | None:
    return "prompt" if fault.blocked else "output" if fault.blocked_output else None


def _filtered(reply: wire.Reply, fault: FaultSpec) -> wire.Reply:
    """OpenAI's content filter: nothing (prompt blocked) or half the text, with `content_filter`."""
    if not (fault.blocked or fault.blocked_output) or reply.text is None:
        return reply
    words = reply.text.split() if fault.blocked_output else []
    return wire.Reply(" ".join(words[: len(words) // 2]), None, "content_filter", reply.prompt)


def _json(raw: bytes) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        data = _decode(raw)
    except msgspec.DecodeError:
        return None
    return data if isinstance(data, dict) else None


def _error(status: int, message: str | None = None, param: str | None = None) -> Response:
    return Response(status, wire.error_body(status, message, param), list(_JSON))


def _retry_after(fault: FaultSpec) -> str:
    seconds = fault.retry_after or 0.0
    if fault.retry_after_date:
        when = datetime.now(UTC) + timedelta(seconds=seconds)
        return email.utils.format_datetime(when, usegmt=True)
    return f"{seconds:g}"


async def start_simulator(sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> HttpServer:
    return await start_server(sim.handle, host, port)
