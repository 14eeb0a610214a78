"""The provider simulator: an HTTP handler that answers like OpenAI and fails on demand.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from sidestep.server.protocol import HttpServer, start_server
from sidestep.server.types import AbortConnection, Request, Response, StreamingResponse
from sidestep.sim import openai as wire
from sidestep.sim.faults import FaultSpec, Scenario, parse_fault

__all__ = ["Received", "Simulator", "start_simulator"]

_JSON = [("content-type", "application/json")]
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    at: float


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
    ) -> None:
        self.name = name
        self.scenario = scenario
        self.clock = clock
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        self.received: list[Received] = []
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._seed = seed
        self._fault: FaultSpec | None = None
        self._started = clock()
        self._count = 0

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
        self.received.append(Received(request.method, request.path, request.headers, body, self.clock()))
        path = request.path[3:] if request.path.startswith("/v1/") else request.path
        operation, deployment = _operation(path)
        if path in ("/health", "/v1/health") and request.method == "GET":
            return Response(200, b'{"status":"ok"}', list(_JSON))
        if path in ("/models", "/v1/models") and request.method == "GET":
            return Response(200, _encode({"object": "list", "data": []}), list(_JSON))
        if operation is None or request.method != "POST":
            return _error(404, f"Unknown request URL: {request.method} {request.path}.")
        if not self._authorised(request.headers):
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
        model, _, suffix = raw_model.partition("@")
        self._count += 1
        fault = self._choose(headers.get("x-sim-fault"), suffix, model)
        if operation == "chat" and not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is a required property", "messages")
        if fault is not None:
            failed = await self._before_headers(fault)
            if failed is not None:
                return failed
        if operation == "embeddings":
            return Response(200, wire.embeddings(body, model), self._headers())
        reply = wire.plan_reply(body, self.name)
        ident = "chatcmpl-" + hashlib.sha256(f"{self.name}{self._count}".encode()).hexdigest()[:24]
        if body.get("stream") is True:
            events = self._stream(body, model, reply, ident, fault or FaultSpec())
            return StreamingResponse(200, events, [("content-type", "text/event-stream"), *self._headers()[1:]])
        if fault is not None and fault.malformed:
            return Response(200, b'{"id": "chatcmpl-broken", "choices": [', self._headers())
        return Response(200, wire.completion(body, model, reply, ident), self._headers())

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

    async def _before_headers(self, fault: FaultSpec) -> Response | None:
        if fault.latency:
            await self._sleep(fault.latency)
        if fault.hang:
            await asyncio.Event().wait()  # until the client gives up and the server cancels us
        if fault.reset:
            raise AbortConnection
        if fault.status is not None:
            response = _error(fault.status, fault.message)
            if fault.retry_after is not None:
                response.headers.append(("retry-after", _retry_after(fault)))
            return response
        return None

    async def _stream(
        self, body: dict[str, Any], model: str, reply: wire.Reply, ident: str, fault: FaultSpec
    ) -> AsyncIterator[bytes]:
        events = list(wire.chunk_events(body, model, reply, ident, fault.chunks or 8))
        for index, event in enumerate(events):
            if fault.drop_after is not None and index >= fault.drop_after:
                raise AbortConnection
            if index == 1 and fault.ttft:
                await self._sleep(fault.ttft)
            elif index > 1 and fault.chunk_delay:  # pacing after the first content; ttft covers the first
                await self._sleep(fault.chunk_delay)
            if fault.malformed and index == 1:
                yield b"data: {not json\n\n"
                continue
            yield event

    def _authorised(self, headers: dict[str, str]) -> bool:
        if self.api_keys is None:
            return True
        bearer = headers.get("authorization", "")
        key = bearer[7:] if bearer.lower().startswith("bearer ") else headers.get("api-key", "")
        return key in self.api_keys

    def _headers(self) -> list[tuple[str, str]]:
        return [("content-type", "application/json"), ("x-request-id", f"req_sim_{self.name}_{self._count}")]

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


def _operation(path: str) -> tuple[str | None, str | None]:
    if path in ("/chat/completions", "/v1/chat/completions"):
        return "chat", None
    if path in ("/embeddings", "/v1/embeddings"):
        return "embeddings", None
    if path.startswith("/openai/deployments/"):
        deployment, _, rest = path[len("/openai/deployments/") :].partition("/")
        return {"chat/completions": "chat", "embeddings": "embeddings"}.get(rest), deployment or None
    return None, None


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
