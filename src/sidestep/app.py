"""The gateway: an HTTP handler that turns an inbound OpenAI request into routed upstream attempts.

`Gateway.handle` is the server's only callback. It stays thin: find the endpoint (`sidestep.endpoints`:
operation and client format), parse (the client format), resolve and expand the route (pure), run the
attempts (executor), and write the answer with headers saying who served it.

Plugins come from the config (`sidestep.plugins.registry`) and what they can do beyond their hooks —
authenticate, filter models, serve endpoints, start and stop, survive a reload, export metrics — is
discovered when the gateway builds them (`sidestep.plugins.capabilities`), at start and on reload. Every
request the gateway answers, proxied or local, gets one outcome record (`sidestep.outcome.Exchange`),
handed to the observers once it is over; a gateway with neither plugins nor observers builds none.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from sidestep.answers import (
    JSON,
    collected,
    error_response,
    failure,
    failure_headers,
    models_answer,
    models_body,
    relayed,
    served_headers,
    stream_head,
    translated,
)
from sidestep.config.model import Config
from sidestep.endpoints import models_client
from sidestep.errors import (
    AllAttemptsFailed,
    SidestepError,
    UpstreamRejected,
)
from sidestep.formats.base import Converses, ReadsEmbeddings, stream_opening
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.passthrough import request_usage
from sidestep.formats.request import ParsedRequest, model_named
from sidestep.formats.translate import request_needs, translate_embeddings
from sidestep.outcome import Exchange, Observer, tell, tell_at_end
from sidestep.paths import Proxied, model_route, route_table, unrouted
from sidestep.plugins.base import Pipeline, Plugin
from sidestep.plugins.capabilities import Authenticates, Capabilities, HasLifecycle, SurvivesReload, discover
from sidestep.plugins.estimate import relayed_usage
from sidestep.plugins.registry import build_plugins
from sidestep.providers.registry import build_providers
from sidestep.relay import (
    Forward,
    StreamJob,
    forwarding,
    relay,
    relay_after_prelude,
    stream_headers,
    wait_with_keepalive,
)
from sidestep.routing.breaker import Breakers
from sidestep.routing.cooldown import Cooldowns
from sidestep.routing.executor import Executor, RouteState
from sidestep.routing.plan import Planned, Planner, configured_targets, reads_stats
from sidestep.routing.served import Served, done_within
from sidestep.routing.strategies import TargetStats
from sidestep.server.types import Request, Response, StreamingResponse
from sidestep.transport.types import Transport

__all__ = ["Gateway"]

log = logging.getLogger("sidestep.gateway")


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
        observers: Sequence[Observer] = (),
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """`plugins` run outermost first, before the ones the config turns on (governance); `observers`
        are told of every finished exchange (more can be attached once the gateway exists: `attach`)."""
        self._rng = rng or random.Random()
        self._transport = transport
        self._clock, self._sleep, self._wall_clock = clock, sleep, wall_clock
        self._plugins = tuple(plugins)
        self._observers = tuple(observers)
        self._pipeline = Pipeline(())
        self.state = state or _route_state(config)
        self._build(config)
        self._id_prefix = "req_" + os.urandom(7).hex()
        self._ids = itertools.count(1)

    def _build(self, config: Config) -> None:
        """Everything that follows from the config (providers, routes, plugins). Requests in flight keep
        what they started with; circuit breakers, cooldowns and plugins' state (`SurvivesReload`) carry over."""
        providers = build_providers(config.providers, source=config.source)
        plugins = [*self._plugins, *build_plugins(config, self._wall_clock)]
        previous = {plugin.name: plugin for plugin in self._pipeline.plugins}
        for plugin in plugins:
            old = previous.get(plugin.name)
            if isinstance(plugin, SurvivesReload) and old is not None and old is not plugin:
                plugin.adopt(old)
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
        self._timeout = config.server.request_timeout
        self._models_body = models_body(config)
        self._capability_limits = any(p.lacks for p in config.providers.values())
        self._install(plugins)

    def _install(self, plugins: Sequence[Plugin]) -> None:
        """Sort plugins and observers by what they can do, once; build the pipeline and the route table."""
        caps = self._caps = discover(plugins, self._observers)
        self._pipeline = Pipeline(plugins, caps.awaiting)
        self._plugged = bool(self._pipeline)
        self._awaits = self._pipeline.awaits
        self._keeps_answers = caps.keeps_answers
        self._rescuers = caps.rescuers
        for sender in caps.senders:
            sender.bind(self._side_request)
        for streamer in caps.streamers:
            streamer.bind_stream(self._side_served)
        self._tracked = self._plugged or bool(self._observers)  # an outcome record is kept per request
        self._wants_usage = self._pipeline.wants_usage or any(o.wants_usage for o in self._observers)
        self._authenticate = _authenticator(caps.authenticators)
        # The endpoints the gateway answers itself (GET), by operation: the exact table's and the model paths'.
        self._local: dict[str, Callable[..., Awaitable[Response]]] = {
            "models": self._models,
            "health": self._health,
            "ready": self._ready,
        }
        self._routes = route_table(self._proxy, self._local, self._guarded, caps.endpoints)

    def attach(self, observers: Sequence[Observer]) -> None:
        """Tell `observers` too of every finished exchange from now on (and serve their endpoints)."""
        self._observers = (*self._observers, *observers)
        self._install(self._pipeline.plugins)

    def reconfigure(self, config: Config) -> None:
        """Serve `config` from now on (`SIGHUP`). The `server` section is read only at start: changing it
        needs a restart. A config that fails to build changes nothing (the error is raised)."""
        before = self._caps.lifecycles
        self._build(config)
        self.state.breakers.keep_only(config.providers)
        resilience = config.resilience
        self.state.cooldowns.configure(
            default_rate_limit=resilience.rate_limit_cooldown,
            rejected=resilience.rejected_key_cooldown,
            longest=resilience.max_key_cooldown,
            now=self._clock(),
        )
        after = self._caps.lifecycles
        for item in before:
            if not any(item is kept for kept in after):
                item.close()  # a plugin's last state goes where its successor reads it (governance's spend store)
        for item in after:
            if not any(item is old for old in before):
                item.start()

    def start(self) -> None:
        """Start what plugins and observers run in the background, on the running loop (serving starts)."""
        for item in self._caps.lifecycles:
            item.start()

    def close(self) -> None:
        """Stop it again, writing what is left (the server has closed)."""
        for item in self._caps.lifecycles:
            item.close()

    def plugin(self, name: str) -> Plugin | None:
        """The plugin serving under `name` now (a reload replaces configured plugins)."""
        return next((plugin for plugin in self._pipeline.plugins if plugin.name == name), None)

    @property
    def lifecycles(self) -> tuple[HasLifecycle, ...]:
        return self._caps.lifecycles

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    @property
    def breakers(self) -> Breakers:
        return self.state.breakers

    @property
    def stats(self) -> TargetStats:
        return self.state.stats

    def exported_metrics(self) -> list[str]:
        """The Prometheus lines the current plugins export (`ExportsMetrics`), at scrape time."""
        return [line for exporter in self._caps.exporters for line in exporter.exposition()]

    async def handle(self, request: Request) -> Response | StreamingResponse:
        # A random per-process prefix and a counter: unique across workers and restarts, no syscall.
        request_id = f"{self._id_prefix}{next(self._ids):010x}"
        route = self._routes.get(request.path)
        if route is None:
            route = model_route(request.path, self._proxy, self._local)
        exchange = None
        if self._tracked and route.observed:
            exchange = Exchange(request, request_id, route.name, route.format, (), False, self._wall_clock(), {})
        try:
            proxied = route.proxied
            if proxied is not None and request.method == "POST":  # a direct call: no handler in between
                response = await self._proxy(request, request_id, exchange, proxied)
            else:
                handler = route.methods.get(request.method)
                if handler is None:
                    raise unrouted(route, request)
                response = await handler(request, request_id, exchange)
        except SidestepError as exc:
            headers = [("x-sidestep-request-id", request_id), *exc.response_headers]
            response = error_response(route.format, exc, headers)
            if exchange is not None and exchange.error is None:
                exchange.error = exc.message
        except BaseException as exc:  # the client left (499), or a bug (500): still one record
            if exchange is not None:
                _ended_by(exchange, exc)
                exchange.head = exchange.ended = self._wall_clock()
                tell(self._observers, exchange)
            raise
        if exchange is not None:
            exchange.head = now = self._wall_clock()
            exchange.status = response.status
            if isinstance(response, StreamingResponse) and not exchange.streamed:  # a plugin's: agent mode, /mcp
                tell_at_end(self._observers, exchange, response, self._wall_clock)
            elif not exchange.streamed:  # a stream's record is handed over at its end (`_stream_over`)
                exchange.ended = now
                tell(self._observers, exchange)
        return response

    async def _proxy(
        self, request: Request, request_id: str, exchange: Exchange | None, proxied: Proxied
    ) -> Response | StreamingResponse:
        """A proxied POST (`paths.Proxied`: the operation, the client's format, the model and stream the path
        names, if it does)."""
        operation, client, path_model = proxied.operation, proxied.client, proxied.model
        principal = None
        if self._authenticate is not None:  # who is calling, from the head: a stranger's body is never decoded
            try:
                principal = self._authenticate(request)
            except SidestepError:
                if exchange is not None:
                    exchange.proxied = True
                raise
        parsed = client.parse_body(request.body, operation)
        if path_model is not None:
            parsed.models = [model_named(path_model)]
            if proxied.stream is not None:  # the path decides, and every format reads it from the body
                parsed.stream = parsed.body["stream"] = proxied.stream
        if exchange is not None:
            exchange.models, exchange.stream, exchange.body = parsed.models, parsed.stream, parsed.body
            exchange.principal, exchange.proxied, exchange.converses = principal, True, proxied.converses
            if self._plugged:  # a refusal raises: handle() renders it, post hooks ran
                answer = await self._pipeline.pre_async(exchange) if self._awaits else self._pipeline.pre(exchange)
                if answer is not None:
                    return answer
        try:
            plan = self._planner.plan(parsed.models)
            timeout = plan[0].policy.deadline or self._timeout
            deadline = self._executor.clock() + timeout
            needs = parsed.needs
            if self._capability_limits:
                own = proxied.needs  # the format's own reading (Gemini's fields), else the common one
                found = (
                    own(parsed.body, parsed.stream)
                    if own is not None
                    else request_needs(parsed.body, parsed.stream, operation, request.body)
                )
                needs = found | needs if needs else found
            if parsed.stream:
                return await self._stream(parsed, proxied, plan, timeout, needs, request_id, exchange)
            work = self._executor.run(operation, parsed.body, plan, deadline, False, needs, source=proxied.converses)
            try:
                served = await work  # awaited here, not in a helper: each await level costs per resume
            except (UpstreamRejected, AllAttemptsFailed) as exc:
                if self._rescuers and exchange is not None and isinstance(exc, AllAttemptsFailed):
                    rescued = await self._rescued(exchange, exc)
                    if rescued is not None:
                        return rescued
                return self._over(exchange, failure(client, exc, request_id), failed=exc)
            await served.aclose()
            if served.format is not client or proxied.opaque:  # relayed bytes keep the upstream's content type
                converses = proxied.converses  # None: a relayed-only API, whose answers are never translated
                answer = (
                    relayed(served, request_id)
                    if converses is None
                    else translated(served, converses, request_id, operation, parsed.body)
                )
                return self._over(exchange, answer, served)
            # Every API answer here is JSON; not asking the upstream's headers spares decoding them at all.
            response = Response(served.response.status, served.body, [JSON, *served_headers(request_id, served)])
            return response if exchange is None else self._over(exchange, response, served)
        except BaseException as ended:  # not `exc`: one name per exception type (compiled code types it once)
            if exchange is not None:
                self._abandoned(exchange, ended)
            raise

    async def _stream(
        self,
        parsed: ParsedRequest,
        proxied: Proxied,
        plan: Sequence[Planned],
        timeout: float,
        needs: frozenset[str],
        request_id: str,
        exchange: Exchange | None,
    ) -> Response | StreamingResponse:
        # The stream's shape is the route's: opaque bytes relayed as they come (speech audio: no usage tap,
        # comment or continuation), or a framed stream (Bedrock's event stream: no comments, no byte relay); the
        # client's conversing side translates and taps it (None: a relayed-only API's, never translated).
        operation, client, opaque, media = proxied.operation, proxied.client, proxied.opaque, proxied.media
        converses = proxied.converses
        policy = plan[0].policy
        body = parsed.body
        tap = not opaque and exchange is not None and (self._wants_usage or self._keeps_answers)
        include_usage = False
        if converses is not None:  # a relayed-only API's stream (InvokeModel's frames) is not read for its usage here
            include_usage = converses.include_usage(body)
            if tap and not include_usage:  # have the usage reported (then removed) where the format must ask for it
                body = converses.asking_usage(body) or body
        mid_stream = "fail" if opaque else policy.mid_stream or "fail"
        resume = (
            partial(_resume, self._executor, operation, timeout, converses, needs) if mid_stream == "continue" else None
        )
        job = StreamJob(
            self._executor.stream_ended,
            body,
            plan,
            mid_stream,
            client,
            converses,
            include_usage,
            resume,
            tap,
            tap and not include_usage,
            media,
        )
        # Seconds between keep-alive comments while the first token is awaited. A framed stream has them only in
        # a form of its own (`Comments`: the JSON array's whitespace), and sends its opening bytes with the head.
        keepalive = self.config.server.sse_keepalive if policy.keepalive is None else policy.keepalive
        opening = b""
        if media is not None:
            opening = stream_opening(client)
            if not hasattr(client, "comment"):  # `Comments`, read as an attribute (once per framed stream)
                keepalive = 0.0
        if opaque:  # what the answer costs is in the request (speech: characters), not in its bytes
            keepalive, job.outcome.usage = 0.0, request_usage(client, body)
        deadline = self._executor.clock() + timeout
        task = asyncio.ensure_future(self._executor.run(operation, body, plan, deadline, True, needs, source=converses))
        try:
            done = await done_within(task, keepalive or None)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:  # still no first token: commit to a 200 stream and keep the connection warm
            headers = [*stream_headers(media), ("x-sidestep-request-id", request_id)]
            return self._streaming(exchange, job, wait_with_keepalive(task, keepalive, job), headers, opening)
        try:
            served = await task
        except (UpstreamRejected, AllAttemptsFailed) as exc:
            if self._rescuers and exchange is not None and isinstance(exc, AllAttemptsFailed):
                rescued = await self._rescued(exchange, exc)
                if rescued is not None:
                    return rescued
            return self._over(exchange, failure(client, exc, request_id), failed=exc)
        headers = stream_head(client, served, media, opaque) + served_headers(request_id, served)
        if exchange is not None:
            job.outcome.serving(served)
        if forwarding(served, job):  # same format: what prefetch held goes out in the head's write
            forward = relay_after_prelude(served, job)
            return self._streaming(exchange, job, forward, headers, forward.prelude)
        return self._streaming(exchange, job, relay(served, job), headers, opening)

    def _streaming(
        self,
        exchange: Exchange | None,
        job: StreamJob,
        body: AsyncIterator[bytes],
        headers: list[tuple[str, str]],
        prelude: bytes = b"",
    ) -> StreamingResponse:
        response = StreamingResponse(200, body, headers, prelude)
        if isinstance(body, Forward):  # the same-format relay writes itself (no kwargs: a dict per request)
            response.pipe = body.pipe
        if exchange is not None:
            if exchange.headers:
                headers.extend(exchange.headers)
            exchange.streamed = True
            response.on_done = partial(self._stream_over, exchange, job)
        return response

    def _over(
        self,
        exchange: Exchange | None,
        response: Response,
        served: Served | None = None,
        failed: UpstreamRejected | AllAttemptsFailed | None = None,
    ) -> Response:
        """A non-stream request is over (or a stream failed before its head): tell the plugins, then answer
        (`handle` hands the record to the observers)."""
        if exchange is not None:
            if exchange.headers:
                response.headers.extend(exchange.headers)
            exchange.status = response.status
            if served is not None:
                exchange.provider, exchange.model = served.target.provider, served.target.model
                exchange.attempts, exchange.usage = served.attempts, served.usage
                exchange.translated = served.format is not exchange.format
            elif failed is not None:
                exchange.attempts, exchange.error = failed.attempts, failed.message
            if self._plugged:
                if self._keeps_answers and served is not None:
                    exchange.answer = response.body
                self._pipeline.post(exchange)
        return response

    async def _rescued(self, exchange: Exchange, failed: AllAttemptsFailed) -> Response | None:
        """A plugin's answer to a request every target failed (`RescuesFailures`), or None (the 502 stands)."""
        exchange.attempts = failed.attempts
        for plugin in self._rescuers:
            try:
                answer = await plugin.rescue(exchange)
            except Exception:  # a plugin's bug: the client gets the failure it would have had
                log.exception("a plugin failed to rescue %s", exchange.request_id)
                continue
            if answer is not None:
                answer.headers.extend(failure_headers(exchange.request_id, failed.attempts))
                return self._over(exchange, answer)
        return None

    def _stream_over(self, exchange: Exchange, job: StreamJob, complete: bool) -> None:
        outcome = job.outcome
        served = outcome.served
        exchange.status = 200
        if served is not None:
            exchange.provider, exchange.model = served.target.provider, served.target.model
            exchange.translated = job.writer is not None  # a translating writer produced the client's stream
        exchange.attempts = outcome.attempts
        exchange.usage, exchange.error = outcome.usage, outcome.failure
        if not complete and exchange.error is None:
            exchange.error = "the client disconnected mid-stream"
        if outcome.relayed is not None and (exchange.error is not None or outcome.usage is None):
            # Cut short, or never reported: charge what was relayed rather than nothing.
            exchange.usage = relayed_usage(outcome.usage, len(exchange.request.body), outcome.relayed())
            exchange.estimated = True
        exchange.ended = self._wall_clock()
        if self._plugged:
            kept, client = outcome.kept, job.converses  # events are kept only of a tapped stream: one that converses
            if self._keeps_answers and exchange.error is None and kept is not None and client is not None:
                exchange.answer = collected(client, kept(), outcome.usage)
            self._pipeline.post(exchange)
        tell(self._observers, exchange)

    def _abandoned(self, exchange: Exchange, exc: BaseException) -> None:
        """The request ended in an exception: a gateway error (404 for an unknown model …), or the client
        left before the answer (recorded as 499, nginx's "client closed request")."""
        _ended_by(exchange, exc)
        if self._plugged:
            self._pipeline.post(exchange)

    async def _side_request(self, operation: str, body: dict[str, Any]) -> bytes:
        """A plugin's own request (`SendsRequests`): the answer's body in OpenAI's format."""
        served = await self._side_served(operation, body)
        await served.aclose()
        source = served.format
        if source is not OPENAI_CHAT and isinstance(source, ReadsEmbeddings):
            return translate_embeddings(served.body, source, OPENAI_CHAT, served.target.model, {})
        return served.body

    async def _side_served(self, operation: str, body: dict[str, Any]) -> Served:
        """A plugin's own request routed as a client's would be, failover included; streamed when its body asks
        (`StreamsRequests`: the plugin reads and closes what is served)."""
        plan, stream = self._planner.plan([body["model"]]), body.get("stream") is True
        deadline = self._executor.clock() + (plan[0].policy.deadline or self._timeout)
        needs = request_needs(body, stream, operation)
        return await self._executor.run(operation, body, plan, deadline, stream, needs, source=OPENAI_CHAT)

    def configured(self, label: str) -> bool:
        """Whether the config names the target `provider/model` (a route's or a listed model)."""
        return label in self._configured

    def _replan(self, names: Sequence[str]) -> Sequence[Planned]:
        return self._planner.plan(names)

    async def _guarded(
        self,
        handler: Callable[[Request, Any, Exchange | None], Awaitable[Response | StreamingResponse]],
        request: Request,
        request_id: str,
        exchange: Exchange | None,
    ) -> Response | StreamingResponse:
        """A plugin's endpoint for callers the gateway knows: authenticated from the head, as `_proxy` does."""
        principal = self._authenticate(request) if self._authenticate is not None else None
        if exchange is not None:
            exchange.principal = principal
        return await handler(request, principal, exchange)

    async def _models(
        self, request: Request, request_id: str, exchange: Exchange | None, model: str | None = None
    ) -> Response:
        """Every route and listed model, or the one `model` names, in the asking SDK's shape; a caller a plugin
        narrows (`FiltersModels`: a virtual key with a model allow-list) sees only what it may use."""
        tests = [test for plugin in self._caps.model_filters if (test := plugin.allowed_models(request)) is not None]
        client = models_client(request.header("anthropic-version"))
        if tests or model is not None or client is not OPENAI_CHAT:
            allowed = (lambda name: all(test(name) for test in tests)) if tests else None
            return models_answer(self.config, client, request.query, model, allowed, self._configured)
        return Response(200, self._models_body, [JSON])

    async def _health(self, request: Request, request_id: str, exchange: Exchange | None) -> Response:
        return Response(200, b'{"status":"ok"}', [JSON])

    async def _ready(self, request: Request, request_id: str, exchange: Exchange | None) -> Response:
        if not self._providers:
            return Response(503, b'{"status":"not ready","reason":"no providers configured"}', [JSON])
        return Response(200, b'{"status":"ready"}', [JSON])


def _authenticator(plugins: Sequence[Authenticates]) -> Callable[[Request], Any] | None:
    """One call that asks every authenticating plugin in order (any may refuse): the caller is the first
    one's answer that is not None. None when no plugin authenticates."""
    if not plugins:
        return None
    if len(plugins) == 1:
        return plugins[0].authenticate

    def authenticate(request: Request) -> Any:
        found = [plugin.authenticate(request) for plugin in plugins]
        return next((principal for principal in found if principal is not None), None)

    return authenticate


def _ended_by(exchange: Exchange, exc: BaseException) -> None:
    if isinstance(exc, SidestepError):
        exchange.status, exchange.error = exc.status, exc.message
    elif isinstance(exc, asyncio.CancelledError):
        exchange.status, exchange.error = 499, "the client disconnected before the answer"
    else:
        exchange.status, exchange.error = 500, f"internal error: {exc!r}"


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


async def _resume(
    executor: Executor,
    operation: str,
    timeout: float,
    source: Converses | None,
    needs: frozenset[str],
    body: dict[str, Any],
    plan: Sequence[Planned],
) -> Served:
    """A continuation's next target (`sidestep.relay.Resume`): the request run again as a stream on `plan`,
    skipping the targets that lack what it needs, as the first run did."""
    return await executor.run(operation, body, plan, executor.clock() + timeout, True, needs, source=source)
