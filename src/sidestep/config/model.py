"""The validated configuration: plain frozen values built once at start-up and passed down.

Nothing here reads files or the environment; `sidestep.config.load` does that and builds these.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

__all__ = [
    "BreakerPolicy",
    "CacheConfig",
    "Config",
    "FallbackNode",
    "GovernanceConfig",
    "KeyConfig",
    "Limits",
    "LoadBalanceNode",
    "McpConfig",
    "McpServerConfig",
    "NodePolicy",
    "Price",
    "ProviderConfig",
    "ResilienceConfig",
    "RetryPolicy",
    "RouteNode",
    "Secret",
    "ServerConfig",
    "StageTimeouts",
    "TargetNode",
    "TeamConfig",
    "VirtualKey",
]


class Secret:
    """An API key. Its repr and str never show the value, so it cannot leak into logs or errors."""

    __slots__ = ("_value", "label")

    def __init__(self, value: str, label: str = "") -> None:
        self._value = value
        self.label = label

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.label or '***'})"

    def __str__(self) -> str:  # a method, not `__str__ = __repr__`: compiled classes do not take the alias
        return self.__repr__()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a circuit breaker opens and how it recovers (`sidestep.routing.breaker` runs it)."""

    failure_threshold: int = 5
    error_rate: float = 0.5
    min_requests: int = 20
    window: float = 30.0
    buckets: int = 10
    cooldown: float = 30.0
    half_open_probes: int = 1


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Tries of one target and the waits between them (`sidestep.routing.retry` applies it)."""

    attempts: int = 1  # tries of the same target before moving on (1 = no retry, straight to failover)
    base_backoff: float = 0.25
    max_backoff: float = 8.0
    retry_on: frozenset[int] = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
    retry_connection_errors: bool = True


@dataclass(frozen=True, slots=True)
class StageTimeouts:
    """Seconds per stage of one attempt; None means "not set here" (inherit, or no limit at the top).

    connect: TCP+TLS; headers: until the status line; first_token: until a stream's first content event;
    idle: each gap between body chunks; total: the whole attempt.
    """

    connect: float | None = None
    headers: float | None = None
    first_token: float | None = None
    idle: float | None = None
    total: float | None = None

    def over(self, base: StageTimeouts) -> StageTimeouts:
        """These timeouts where set, `base` elsewhere."""
        return StageTimeouts(
            connect=base.connect if self.connect is None else self.connect,
            headers=base.headers if self.headers is None else self.headers,
            first_token=base.first_token if self.first_token is None else self.first_token,
            idle=base.idle if self.idle is None else self.idle,
            total=base.total if self.total is None else self.total,
        )


PROVIDER_TIMEOUTS = StageTimeouts(connect=10.0, headers=60.0, idle=60.0)


@dataclass(frozen=True, slots=True)
class NodePolicy:
    """Resilience settings a route node gives the targets under it; the nearest setting wins."""

    retry: RetryPolicy | None = None
    timeouts: StageTimeouts = StageTimeouts()
    hedge_delay: float | None = None
    mid_stream: str | None = None  # "fail" (default) or "continue"
    keepalive: float | None = None  # SSE comment interval while waiting for the first token
    deadline: float | None = None  # the whole request (root node only)
    # error kind ("context_window", "content_policy") → names (targets or routes) tried when a target fails so
    fallbacks_on: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def fallbacks_for(self, kind: str | None) -> tuple[str, ...]:
        return next((names for k, names in self.fallbacks_on if k == kind), ())

    def under(self, parent: NodePolicy) -> NodePolicy:
        """This node's policy with unset fields taken from `parent`."""
        return NodePolicy(
            retry=self.retry or parent.retry,
            timeouts=self.timeouts.over(parent.timeouts),
            hedge_delay=parent.hedge_delay if self.hedge_delay is None else self.hedge_delay,
            mid_stream=self.mid_stream or parent.mid_stream,
            keepalive=parent.keepalive if self.keepalive is None else self.keepalive,
            deadline=parent.deadline if self.deadline is None else self.deadline,
            fallbacks_on=self.fallbacks_on or parent.fallbacks_on,
        )


NO_POLICY = NodePolicy()


@dataclass(frozen=True, slots=True)
class KeyConfig:
    secret: Secret | None
    weight: float = 1.0
    models: frozenset[str] | None = None  # allow-list; None means every model
    name: str = ""  # stable label for logs/metrics ("openai#0"), never the secret


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    type: str
    base_url: str
    keys: tuple[KeyConfig, ...]
    headers: tuple[tuple[str, str], ...] = ()
    timeouts: StageTimeouts = PROVIDER_TIMEOUTS
    models: tuple[str, ...] = ()
    api_version: str | None = None
    # (model glob, capabilities it lacks): "tools", "vision", "json_schema", "streaming"
    lacks: tuple[tuple[str, frozenset[str]], ...] = ()
    # Capabilities no model of the provider's type has, whatever `lacks` says (its catalog row: `responses` for
    # every provider that does not speak the Responses API upstream).
    never: frozenset[str] = frozenset()
    drop_fields: tuple[str, ...] = ()  # body fields never sent to this provider (on top of its type's own)
    serves: frozenset[str] | None = None  # relayed-only operations its API serves; None: its type's (catalog)
    # Adapter-specific settings (see `ProviderSpec.settings`): strings, or `Secret` for secret ones.
    settings: tuple[tuple[str, str | Secret], ...] = ()

    def setting(self, name: str) -> str | None:
        """A plain adapter setting, or None when unset."""
        for key, value in self.settings:
            if key == name:
                return value.reveal() if isinstance(value, Secret) else value
        return None

    def secret_setting(self, name: str) -> Secret | None:
        for key, value in self.settings:
            if key == name:
                return value if isinstance(value, Secret) else Secret(value, name)
        return None

    def lacks_for(self, model: str) -> frozenset[str]:
        """Capabilities `model` does not have here; a request needing one skips this target."""
        if not self.lacks:
            return self.never
        found: set[str] = set(self.never)
        for glob, missing in self.lacks:
            if glob == "*" or fnmatch.fnmatchcase(model, glob):
                found |= missing
        return frozenset(found)


@dataclass(frozen=True, slots=True)
class TargetNode:
    provider: str
    model: str
    weight: float = 1.0
    policy: NodePolicy = NO_POLICY
    label: str = field(init=False, repr=False, compare=False)  # "provider/model", built once (hot path)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.provider}/{self.model}")


@dataclass(frozen=True, slots=True)
class FallbackNode:
    children: tuple[RouteNode, ...]
    weight: float = 1.0
    policy: NodePolicy = NO_POLICY


@dataclass(frozen=True, slots=True)
class LoadBalanceNode:
    children: tuple[RouteNode, ...]
    weight: float = 1.0
    policy: NodePolicy = NO_POLICY
    strategy: str = "weighted"


RouteNode = TargetNode | FallbackNode | LoadBalanceNode


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 32 * 1024 * 1024
    request_timeout: float = 600.0
    workers: int = 1
    access_log: str | None = None  # None: off; "stderr" or a file path: one JSON line per request
    request_log: str | None = None  # None: off; "stderr" or a file path: one JSON record per LLM request
    metrics: bool = False  # Prometheus text on GET /metrics
    metrics_key: Secret | None = None  # when set, GET /metrics needs `Authorization: Bearer <it>`
    sse_keepalive: float = 15.0  # seconds between `: keep-alive` comments while a stream waits; 0 = off
    drain_timeout: float = 10.0  # on SIGTERM/SIGINT: seconds for in-flight requests to finish before they are cut


@dataclass(frozen=True, slots=True)
class ResilienceConfig:
    breaker: BreakerPolicy = BreakerPolicy()
    rate_limit_cooldown: float = 10.0  # a 429 without Retry-After rests the key this long
    rejected_key_cooldown: float = 3600.0  # a 401/403 takes the key out of rotation this long
    max_key_cooldown: float = 3600.0  # no key rests longer, whatever an upstream's Retry-After says


BUDGET_PERIODS = ("daily", "weekly", "monthly", "total")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one key, team or customer may use; None means no limit of that kind."""

    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens (input + output) per minute
    budget_usd: float | None = None  # spend per budget period, priced from `governance.pricing`
    budget_period: str = "monthly"  # daily, weekly, monthly (calendar, UTC) or total

    @property
    def any(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.budget_usd is not None


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class TeamConfig:
    name: str
    limits: Limits = NO_LIMITS
    customer: str | None = None


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """A key the gateway hands out to a client (never sent upstream)."""

    name: str
    secret: Secret
    team: str | None = None
    customer: str | None = None  # its own, else its team's
    models: tuple[str, ...] | None = None  # globs over the model names a request uses; None: any
    limits: Limits = NO_LIMITS
    enabled: bool = True
    expires: float | None = None  # UTC seconds from which the key no longer works


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens; `per_unit`: USD per billed unit (an image, a rerank search unit, a second of
    audio) for the relayed-only APIs that report units."""

    input: float
    output: float
    per_unit: float = 0.0


@dataclass(frozen=True, slots=True)
class GovernanceConfig:
    keys: tuple[VirtualKey, ...] = ()
    teams: dict[str, TeamConfig] = field(default_factory=dict)
    customers: dict[str, Limits] = field(default_factory=dict)
    pricing: dict[str, Price] = field(default_factory=dict)  # "provider/model" or "model" → price
    store: str | None = None  # a SQLite file keeping budget spend across restarts and workers
    rate_limit_headers: bool = False  # answers say the key's rpm/tpm room (x-ratelimit-*; costs ~2-3 µs each)
    reserve_output_tokens: int = 1024  # a budgeted request without max_tokens reserves this many output tokens

    @property
    def enabled(self) -> bool:
        """Governance is on once any virtual key exists: from then on every proxied request needs one."""
        return bool(self.keys)


CACHE_SCOPES = ("key", "team", "customer", "global")


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The `cache:` section (`sidestep.plugins.cache`); off unless the section is present."""

    enabled: bool = False
    ttl: float = 3600.0  # seconds an answer is served from the cache
    max_ttl: float = 86400.0  # the most a request may ask for (`x-sidestep-cache-ttl`)
    max_entries: int = 10_000
    max_bytes: int = 64 * 1024 * 1024  # answers' bytes held in memory (the memory backend)
    max_entry_bytes: int = 1024 * 1024  # a bigger answer is not stored
    scope: str = "key"  # who shares entries: each virtual key, its team, its customer, or everyone ("global")
    nondeterministic: bool = False  # also cache requests with temperature > 0 (or unset) and no seed, or n > 1
    models: tuple[str, ...] | None = None  # globs over the model names a request uses; None: every one
    backend: str = "memory"  # "memory" (per process) or "redis" (shared)
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "sidestep:cache:"
    redis_timeout: float = 0.25  # seconds a Redis call may take before it counts as an outage (a miss)
    semantic_route: str | None = None  # the embeddings route or model; None: no semantic cache
    semantic_models: tuple[str, ...] = ()  # globs: the requests that opt in to semantic hits
    semantic_threshold: float = 0.95  # the least cosine similarity a semantic hit needs
    semantic_max_entries: int = 10_000  # vectors held (per process; with Redis, also the stream's length)
    semantic_max_bytes: int = 64 * 1024 * 1024  # the vectors' memory (per process)
    serve_stale: tuple[str, ...] = ()  # globs: requests for these names get an expired entry when every target fails
    stale_grace: float = 86400.0  # seconds an entry is kept past its TTL for that (only with serve_stale)
    admin_key: Secret | None = None  # guards POST /sidestep/cache/purge (header x-sidestep-admin-key); None: off


MCP_TRANSPORTS = ("stdio", "http", "sse")


@dataclass(frozen=True, slots=True)
class McpServerConfig:
    """One upstream MCP server: a command the gateway runs (stdio) or a URL (Streamable HTTP or SSE)."""

    name: str
    transport: str  # one of MCP_TRANSPORTS
    command: str | None = None  # stdio
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, Secret], ...] = ()  # added to the child's environment (values may be `env:` secrets)
    cwd: str | None = None
    url: str | None = None  # http, sse
    headers: tuple[tuple[str, Secret], ...] = ()  # sent with every request (values may be `env:` secrets)
    timeout: float = 30.0  # seconds a tool call may take before it counts as failed
    fallback: tuple[str, ...] = ()  # equivalent servers a failed call goes on to, in order


@dataclass(frozen=True, slots=True)
class McpConfig:
    servers: dict[str, McpServerConfig] = field(default_factory=dict)
    separator: str = "__"  # between server and tool in the aggregated catalogue: github__create_issue
    # Virtual key name → globs over "server" or "server<separator>tool" it may use; empty: no allow-lists.
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    max_tools: int = 1000  # per server: tools, resources and prompts beyond this are dropped (and counted)
    restart_backoff: float = 0.5  # first wait before reconnecting a server that failed; doubles up to restart_max
    restart_max: float = 30.0
    # Tools in chat: route (model) name / virtual key name → servers whose tools its chat requests are given.
    chat_routes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    chat_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Agent mode: requests to these routes or from these keys have their MCP tool calls run by the gateway.
    agent_routes: frozenset[str] = frozenset()
    agent_keys: frozenset[str] = frozenset()
    agent_max_steps: int = 8  # model turns at most
    agent_timeout: float = 120.0  # seconds for the whole loop
    # Rate limits on tool calls, per minute: each virtual key's (the keyless caller counts as one), and
    # each tool's matching a glob (all callers together; the first matching glob counts).
    key_calls_per_minute: int | None = None
    tool_calls_per_minute: tuple[tuple[str, int], ...] = ()
    log_arguments: bool = False  # the request log keeps each tool call's arguments (they may hold secrets)

    @property
    def agent(self) -> bool:
        return bool(self.agent_routes or self.agent_keys)

    @property
    def enabled(self) -> bool:
        return bool(self.servers)


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = ServerConfig()
    resilience: ResilienceConfig = ResilienceConfig()
    governance: GovernanceConfig = GovernanceConfig()
    cache: CacheConfig = CacheConfig()
    mcp: McpConfig = McpConfig()
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    routes: dict[str, RouteNode] = field(default_factory=dict)
    source: str = "<defaults>"
