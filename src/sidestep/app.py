"""The gateway: an HTTP handler that turns an inbound OpenAI request into routed upstream attempts.

`Gateway.handle` is the server's only callback. It stays thin: find the endpoint (`sidestep.endpoints`:
operation and client format), parse (the client format), resolve and expand the route (pure), run the
attempts (executor), and write the answer with headers saying who served it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import msgspec

from sidestep.config.model import Config
from sidestep.endpoints import ENDPOINTS, client_format
from sidestep.errors import (
    AllAttemptsFailed,
    Attempt,
    MethodNotAllowed,
    NotFound,
    SidestepError,
    Unauthorized,
    UpstreamError,
    UpstreamRejected,
)
from sidestep.formats.base import ClientFormat, ReadsEmbeddings, WritesEmbeddings
from sidestep.formats.body import field
from sidestep.formats.request import ParsedRequest
from sidestep.formats.translate import NO_NEEDS, request_needs, translate_embeddings, translate_response
from sidestep.plugins.base import Exchange, Pipeline, Plugin
from sidestep.plugins.estimate import relayed_usage
from sidestep.plugins.governance import Governance
from sidestep.providers.registry import build_providers
from sidestep.relay import StreamJob, forwarding, relay, relay_after_prelude, wait_with_keepalive
from sidestep.routing.breaker import Breakers
from sidestep.routing.cooldown import Cooldowns
from sidestep.routing.executor import Executor, RouteState
from sidestep.routing.plan import Planned, Planner, configured_targets, reads_stats
from sidestep.routing.served import Served
from sidestep.server.types import Request, Response, StreamingResponse
from sidestep.transport.types import Transport

__all__ = ["Gateway"]

_Endpoint = Callable[[Request, str], Awaitable[Response | StreamingResponse]]
_JSON = ("content-type", "application/json")
_SSE_HEADERS = [("content-type", "text/event-stream"), ("cache-control", "no-cache"), ("x-accel-buffering", "no")]


class Gateway:
    def __init__(
        self,
        config: Config,
        transport: Transport,
        *,
        rng: random.Random | None = None,
        state: RouteState | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        plugins: Sequence[Plugin] = (),
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """`plugins` run outermost first, before the ones the config turns on (governance)."""
        self._rng = rng or random.Random()
        self._transport = transport
        self._clock, self._sleep, self._wall_clock = clock, sleep, wall_clock
        self._plugins = tuple(plugins)
        self._on_attempt: Callable[[Attempt], None] | None = None
        self.state = state or _route_state(config)
        self.governance: Governance | None = None
        self._build(config)
        local: dict[str, _Endpoint] = {
            "models": self._models,
            "health": self._health,
            "ready": self._ready,
            "key_info": self._key_info,
        }
        self._routes: dict[str, dict[str, _Endpoint]] = {
            path: {"GET": local[e.operation]}
            if e.method == "GET"
            else {"POST": partial(self._proxy, operation=e.operation, client=e.format)}
            for path, e in ENDPOINTS.items()
        }
        self._id_prefix = "req_" + os.urandom(7).hex()
        self._ids = itertools.count(1)

    def _build(self, config: Config) -> None:
        """Everything that follows from the config (providers, routes, governance). Requests in flight keep
        what they started with; circuit breakers, cooldowns and governance counters carry over."""
        providers = build_providers(config.providers, source=config.source)
        governance = None
        if config.governance.enabled:
            governance = Governance(
                config.governance, clock=self._wall_clock, source=config.source, routes=config.routes
            )
            if self.governance is not None:
                governance.adopt(self.governance)
        self.config = config
        self._providers = providers
        self._configured = configured_targets(config.routes, config.providers)
        self._planner = Planner(config.routes, config.providers, self._rng, self.state.stats)
        self._executor = Executor(
            providers,
            self._transport,
            self._rng,
            state=self.state,
            clock=self._clock,
            sleep=self._sleep,
            replan=self._replan,
            track_stats=reads_stats(config.routes),
            configured=self._configured,
        )
        self._executor.on_attempt = self._on_attempt
        self._timeout = config.server.request_timeout
        self._models_body = _models_body(config)
        self._capability_limits = any(p.lacks for p in config.providers.values())
        self.governance = governance
        self._pipeline = Pipeline([*self._plugins, *([governance] if governance is not None else [])], self._wall_clock)
        self._plugged = bool(self._pipeline)

    def reconfigure(self, config: Config) -> None:
        """Serve `config` from now on (`SIGHUP`). The `server` section is read only at start: changing it
        needs a restart. A config that fails to build changes nothing (the error is raised)."""
        old = self.governance
        self._build(config)
        self.state.breakers.keep_only(config.providers)
        resilience = config.resilience
        self.state.cooldowns.configure(
            default_rate_limit=resilience.rate_limit_cooldown,
            rejected=resilience.rejected_key_cooldown,
            longest=resilience.max_key_cooldown,
            now=self._clock(),
        )
        if old is not None and old is not self.governance:
            old.close()  # its last spend goes to the store the new one reads (the same counters, adopted)
        if self.governance is not None:
            self.governance.start()

    async def handle(self, request: Request) -> Response | StreamingResponse:
        # A random per-process prefix and a counter: unique across workers and restarts, no syscall.
        request_id = f"{self._id_prefix}{next(self._ids):010x}"
        methods = self._routes.get(request.path)
        try:
            if methods is None:
                raise NotFound(f"Unknown path '{request.path}'.", code="not_found")
            endpoint = methods.get(request.method)
            if endpoint is None:
                allowed = ", ".join(methods)
                raise MethodNotAllowed(f"Method {request.method} is not allowed on {request.path}; use {allowed}.")
            return await endpoint(request, request_id)
        except SidestepError as exc:
            headers = [("x-sidestep-request-id", request_id), *exc.response_headers]
            return _error(client_format(request.path), exc, headers)

    async def _proxy(
        self, request: Request, request_id: str, operation: str, client: ClientFormat
    ) -> Response | StreamingResponse:
        key = None
        if self.governance is not None:  # who is calling, from the head: a stranger's body is never decoded
            try:
                key = self.governance.authenticate(request)
            except Unauthorized:
                self._refuse(request, request_id, operation, client)
                raise
        parsed = client.parse_body(request.body, operation)
        exchange = None
        if self._plugged:
            exchange = Exchange(
                request,
                request_id,
                operation,
                client,
                parsed.models,
                parsed.stream,
                self._wall_clock(),
                parsed.body,
                principal=key,
            )
            answer = self._pipeline.pre(exchange)  # a refusal raises: handle() renders it, post hooks ran
            if answer is not None:
                return answer
        try:
            plan = self._planner.plan(parsed.models)
            timeout = plan[0].policy.deadline or self._timeout
            deadline = self._executor.clock() + timeout
            needs = (
                request_needs(parsed.body, parsed.stream, operation, request.body)
                if self._capability_limits
                else NO_NEEDS
            )
            if parsed.stream:
                return await self._stream(parsed, operation, client, plan, timeout, needs, request_id, exchange)
            work = self._executor.run(operation, parsed.body, plan, deadline, False, needs, source=client)
            try:
                served = await work  # awaited here, not in a helper: each await level costs per resume
            except (UpstreamRejected, AllAttemptsFailed) as exc:
                return self._over(exchange, _failure(client, exc, request_id), failed=exc)
            await served.aclose()
            if served.format is not client:
                if operation == "embeddings":
                    encoding = field(parsed.body, "encoding_format")
                    translated = _translated_embeddings(served, client, encoding, request_id)
                    return self._over(exchange, translated, served)
                return self._over(exchange, _translated(served, client, request_id), served)
            # Every API answer here is JSON; not asking the upstream's headers spares decoding them at all.
            response = Response(served.response.status, served.body, [_JSON, *_served_headers(request_id, served)])
            return response if exchange is None else self._over(exchange, response, served)
        except BaseException as ended:  # not `exc`: one name per exception type (compiled code types it once)
            if exchange is not None:
                self._abandoned(exchange, ended)
            raise

    def _refuse(self, request: Request, request_id: str, operation: str, client: ClientFormat) -> None:
        """A request without a usable key, before its body is read: the plugins see it go (governance
        refuses it in `pre`, the request log records the 401), with no model and no body."""
        exchange = Exchange(request, request_id, operation, client, (), False, self._wall_clock(), {})
        self._pipeline.pre(exchange)

    async def _stream(
        self,
        parsed: ParsedRequest,
        operation: str,
        client: ClientFormat,
        plan: Sequence[Planned],
        timeout: float,
        needs: frozenset[str],
        request_id: str,
        exchange: Exchange | None,
    ) -> Response | StreamingResponse:
        policy = plan[0].policy
        include_usage = client.include_usage(parsed.body)
        body = parsed.body
        tap = exchange is not None and self._pipeline.wants_usage
        if tap and not include_usage:  # have the usage reported (then removed) where the format must ask for it
            body = client.asking_usage(body) or body
        job = StreamJob(
            self._executor,
            operation,
            body,
            plan,
            timeout,
            policy.mid_stream or "fail",
            client,
            include_usage,
            tap_usage=tap,
            drop_usage=tap and not include_usage,
        )
        keepalive = policy.keepalive if policy.keepalive is not None else self.config.server.sse_keepalive
        deadline = self._executor.clock() + timeout
        task = asyncio.ensure_future(self._executor.run(operation, body, plan, deadline, True, needs, source=client))
        try:
            done = await _done_within(task, keepalive or None)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:  # still no first token: commit to a 200 stream and keep the connection warm
            headers = [*_SSE_HEADERS, ("x-sidestep-request-id", request_id)]
            return self._streaming(exchange, job, wait_with_keepalive(task, keepalive, job), headers)
        try:
            served = await task
        except (UpstreamRejected, AllAttemptsFailed) as exc:
            return self._over(exchange, _failure(client, exc, request_id), failed=exc)
        headers = _SSE_HEADERS + _served_headers(request_id, served)
        if forwarding(served, job):  # same format: what prefetch held goes out in the head's write
            forward = relay_after_prelude(served, job)
            return self._streaming(exchange, job, forward, headers, forward.prelude)
        return self._streaming(exchange, job, relay(served, job), headers)

    def _streaming(
        self,
        exchange: Exchange | None,
        job: StreamJob,
        body: AsyncIterator[bytes],
        headers: list[tuple[str, str]],
        prelude: bytes = b"",
    ) -> StreamingResponse:
        if exchange is not None and exchange.headers:
            headers.extend(exchange.headers)
        response = StreamingResponse(200, body, headers, prelude)
        if exchange is not None:
            response.on_done = partial(self._stream_over, exchange, job)
        return response

    def _over(
        self,
        exchange: Exchange | None,
        response: Response,
        served: Served | None = None,
        failed: UpstreamRejected | AllAttemptsFailed | None = None,
    ) -> Response:
        """A non-stream request is over (or a stream failed before its head): tell the plugins, then answer."""
        if exchange is not None:
            if exchange.headers:
                response.headers.extend(exchange.headers)
            exchange.status = response.status
            if served is not None:
                _note_served(exchange, served)
                exchange.usage = served.usage
            elif failed is not None:
                exchange.attempts, exchange.error = failed.attempts, failed.message
            self._pipeline.post(exchange)
        return response

    def _stream_over(self, exchange: Exchange, job: StreamJob, complete: bool) -> None:
        outcome = job.outcome
        served = outcome.served
        exchange.status = 200
        if served is not None:
            _note_served(exchange, served)
        else:
            exchange.attempts = outcome.attempts
        exchange.usage, exchange.error = outcome.usage, outcome.failure
        if not complete and exchange.error is None:
            exchange.error = "the client disconnected mid-stream"
        if outcome.relayed is not None and (exchange.error is not None or outcome.usage is None):
            # Cut short, or never reported: charge what was relayed rather than nothing.
            exchange.usage = relayed_usage(outcome.usage, len(exchange.request.body), outcome.relayed())
            exchange.estimated = True
        self._pipeline.post(exchange)

    def _abandoned(self, exchange: Exchange, exc: BaseException) -> None:
        """The request ended in an exception: a gateway error (404 for an unknown model …), or the client
        left before the answer (recorded as 499, nginx's "client closed request")."""
        if isinstance(exc, SidestepError):
            exchange.status, exchange.error = exc.status, exc.message
        elif isinstance(exc, asyncio.CancelledError):
            exchange.status, exchange.error = 499, "the client disconnected before the answer"
        else:
            exchange.status, exchange.error = 500, f"internal error: {exc!r}"
        self._pipeline.post(exchange)

    def configured(self, label: str) -> bool:
        """Whether the config names the target `provider/model` (a route's or a listed model)."""
        return label in self._configured

    def observe_attempts(self, observer: Callable[[Attempt], None]) -> None:
        """Tell `observer` of every try and skip at a target, as the executor records it (metrics)."""
        self._on_attempt = self._executor.on_attempt = observer

    def _replan(self, names: Sequence[str]) -> Sequence[Planned]:
        return self._planner.plan(names)

    async def _models(self, request: Request, request_id: str) -> Response:
        """Every route and listed model; a virtual key with a model allow-list sees only what it may use."""
        governance = self.governance
        if governance is not None and (allowed := governance.allowed_models(request)) is not None:
            return Response(200, _models_body(self.config, allowed), [_JSON])
        return Response(200, self._models_body, [_JSON])

    async def _health(self, request: Request, request_id: str) -> Response:
        return Response(200, b'{"status":"ok"}', [_JSON])

    async def _key_info(self, request: Request, request_id: str) -> Response:
        """The calling virtual key's limits and what it has used of them (`GET /sidestep/key`)."""
        if self.governance is None:
            raise NotFound("No virtual keys are configured on this gateway (governance is off).", code="not_found")
        return Response(200, msgspec.json.encode(self.governance.describe(request)), [_JSON])

    async def _ready(self, request: Request, request_id: str) -> Response:
        if not self._providers:
            return Response(503, b'{"status":"not ready","reason":"no providers configured"}', [_JSON])
        return Response(200, b'{"status":"ready"}', [_JSON])


def _route_state(config: Config) -> RouteState:
    resilience = config.resilience
    return RouteState(
        breakers=Breakers(resilience.breaker),
        cooldowns=Cooldowns(
            default_rate_limit=resilience.rate_limit_cooldown,
            rejected=resilience.rejected_key_cooldown,
            longest=resilience.max_key_cooldown,
        ),
    )


async def _done_within(task: asyncio.Task[Served], seconds: float | None) -> bool:
    """Whether `task` finished within `seconds` (it keeps running either way). What `asyncio.wait` does
    for one task, at a third of its cost (measured 16 µs vs 6 µs): this is on every stream's path."""
    loop = task.get_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def release(*_: object) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_later(seconds, release) if seconds is not None else None
    task.add_done_callback(release)
    try:
        await waiter
    finally:
        task.remove_done_callback(release)
        if timer is not None:
            timer.cancel()
    return task.done()


def _translated(served: Served, client: ClientFormat, request_id: str) -> Response:
    """A non-stream answer in the provider's format, rewritten in the client's."""
    headers = _served_headers(request_id, served)
    try:
        body = translate_response(served.body, served.format, client)
    except (msgspec.DecodeError, TypeError, ValueError, AttributeError) as exc:
        error = UpstreamError(f"{served.target.label} returned an answer that could not be translated: {exc}")
        return _error(client, error, headers)
    return Response(200, body, [_JSON, *headers])


def _translated_embeddings(served: Served, client: ClientFormat, encoding: Any, request_id: str) -> Response:
    headers = _served_headers(request_id, served)
    source = served.format
    try:
        if not isinstance(source, ReadsEmbeddings) or not isinstance(client, WritesEmbeddings):
            raise TypeError(f"no embeddings translation from {source.name} to {client.name}")
        body = translate_embeddings(served.body, source, client, served.target.model, encoding)
    except (msgspec.DecodeError, TypeError, ValueError, AttributeError, KeyError) as exc:
        error = UpstreamError(f"{served.target.label} returned embeddings that could not be translated: {exc}")
        return _error(client, error, headers)
    return Response(200, body, [_JSON, *headers])


def _failure(client: ClientFormat, exc: UpstreamRejected | AllAttemptsFailed, request_id: str) -> Response:
    headers = _failure_headers(request_id, exc.attempts)
    if isinstance(exc, UpstreamRejected):
        error = exc.error
        return Response(error.status, client.upstream_error_body(error), [_JSON, *headers])
    return _error(client, exc, headers)


def _error(client: ClientFormat, exc: SidestepError, headers: list[tuple[str, str]]) -> Response:
    """A gateway error, in the client's format."""
    return Response(exc.status, client.error_body(exc), [_JSON, *headers])


def _served_headers(request_id: str, served: Served) -> list[tuple[str, str]]:
    return [
        ("x-sidestep-provider", served.target.provider),
        ("x-sidestep-model", served.target.model),
        ("x-sidestep-attempts", str(len(served.attempts))),
        ("x-sidestep-fallback-index", str(served.fallback_index)),
        ("x-sidestep-retries", str(served.retries)),
        ("x-sidestep-request-id", request_id),
    ]


def _note_served(exchange: Exchange, served: Served) -> None:
    exchange.provider, exchange.model = served.target.provider, served.target.model
    exchange.attempts = served.attempts


def _failure_headers(request_id: str, attempts: tuple[Attempt, ...]) -> list[tuple[str, str]]:
    return [("x-sidestep-attempts", str(len(attempts))), ("x-sidestep-request-id", request_id)]


def _models_body(config: Config, allowed: Callable[[str], bool] | None = None) -> bytes:
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
