"""The cache plugin: an answer already given is given again, without asking a provider.

`pre_async` files the request under its key (`sidestep.plugins.cache.key`: what determines the answer,
within the caller's tenant) and, on a hit, answers in the gateway's place — in the client's format, whole
or replayed as a stream (`replay`). On a miss the request goes upstream as usual and `post` stores its
answer when it succeeded (a 200; the gateway hands it over because the plugin `keeps_answers` — for a stream,
the events it relayed in the client's format, reassembled, when the stream was not translated).
Each request's answer says what happened: `x-sidestep-cache: hit | miss | bypass`, and so does its outcome
record (`Exchange.cache`), which the request log keeps.

What is cached at all, and how it is keyed, is one table (`cacheable`: (operation, client format) → `Cacheable`).
A request is not cached (`bypass`) when it says `Cache-Control: no-store`, when its model is not one the
config lists, when it refers to state kept at the provider (a stored Responses response), or when its answer is
not a function of the request (`temperature` above 0 or unset without a `seed`, or `n` > 1) unless
`cache.nondeterministic` allows it. `Cache-Control: no-cache` skips the lookup
but stores the fresh answer (a forced refresh); `x-sidestep-cache-ttl: <seconds>` sets the entry's life.

With `cache.serve_stale`, entries are kept `stale_grace` seconds past their TTL; when every target of a
route those globs name fails, `rescue` (`RescuesFailures`) answers from such an entry instead of the 502,
marked `x-sidestep-cache: stale`. `POST /sidestep/cache/purge` (`sidestep.plugins.cache.admin`, on with
`cache.admin_key`) drops entries by tenant, route or age.

A hit is still a request: plugins before the cache in the order (governance) count it against rate limits,
but it carries no usage, so it costs no spend. The store is a seam (`Store`): memory by default, Redis when
configured; a store that fails is a miss, never a failed request. The semantic index (`semantic`) is each
process's own; with Redis the vectors are shared too (`redis_vectors`: every process follows a stream of them),
and a vector whose entry the store no longer has is dropped where it is found.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from sidestep.config.model import CacheConfig
from sidestep.errors import BadRequest, NotFound
from sidestep.formats.base import translatable
from sidestep.formats.named import client_format_named
from sidestep.observers.metrics import labels
from sidestep.outcome import Exchange
from sidestep.plugins.cache.admin import purge_response
from sidestep.plugins.cache.cacheable import CACHED, Cacheable
from sidestep.plugins.cache.key import Keyed, request_key, semantic_parts, tenant_of
from sidestep.plugins.cache.replay import replayed, replayed_type, rewritten
from sidestep.plugins.cache.store import Entry, MemoryStore, Store
from sidestep.plugins.capabilities import SideRequest
from sidestep.server.types import Endpoint, Request, Response

if TYPE_CHECKING:  # numpy is imported only when a semantic cache is configured
    from sidestep.plugins.cache.semantic import Embedder, SemanticIndex, Vector, VectorFeed

__all__ = ["Cache", "build_cache"]

_JSON = ("content-type", "application/json")
_TTL_HEADER = "x-sidestep-cache-ttl"
_UNSERVABLE = (msgspec.MsgspecError, ValueError, TypeError, KeyError, AttributeError, IndexError)


class Cache:
    name = "cache"
    wants_usage = False
    keeps_answers = True

    def __init__(
        self,
        config: CacheConfig,
        store: Store,
        clock: Callable[[], float],
        semantic: tuple[SemanticIndex, Embedder] | None = None,
        feed: VectorFeed | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self._index: SemanticIndex | None = semantic[0] if semantic is not None else None
        self._embedder: Embedder | None = semantic[1] if semantic is not None else None
        self._feed = feed  # the other processes' vectors (Redis), or None: this process's alone
        self._handed_over = False  # a reload's successor took the store: closing it is not ours to do
        self.results = {"hit": 0, "semantic-hit": 0, "stale": 0, "miss": 0, "bypass": 0}
        self.stored = 0
        self.too_big = 0  # answers over `max_entry_bytes`, not stored
        self.unservable = 0  # entries that could not be served in the client's format (served as misses)
        self.orphans = 0  # vectors whose entry was gone (evicted, purged, expired elsewhere), dropped

    @property
    def store(self) -> Store:
        return self._store

    def pre(self, exchange: Exchange) -> Response | None:
        return None

    async def pre_async(self, exchange: Exchange) -> Response | None:
        rule = CACHED.get((exchange.operation, exchange.format))
        if rule is None:  # not an answer the cache keeps (`cacheable.NOT_CACHED`)
            return None
        keyed, lookup = self._keyed(exchange, rule)
        if keyed is None:
            self._mark(exchange, "bypass")
            return None
        tenant = tenant_of(exchange.principal, self._config.scope)
        key = f"{rule.kind}:{tenant}:{keyed.digest}"
        ttl = self._ttl(exchange)  # a bad one is refused, hit or not
        near: tuple[str, Vector] | None = None
        if lookup:
            entry = await self._store.get(key)
            if entry is not None and self._fresh(entry) and (answer := self._served(entry, exchange)) is not None:
                return answer
            if self._index is not None and keyed.request is not None and self._opted_in(exchange):
                answer, near = await self._semantic(exchange, keyed, tenant)
                if answer is not None:
                    return answer
        notes = exchange.notes
        if notes is None:
            notes = exchange.notes = {}
        notes[self.name] = (key, ttl, near)
        self._mark(exchange, "miss")
        return None

    async def _semantic(
        self, exchange: Exchange, keyed: Keyed, tenant: str
    ) -> tuple[Response | None, tuple[str, Vector] | None]:
        """A semantic hit, or None and (the bucket, the vector) to file the fresh answer under."""
        parts = semantic_parts(keyed.request) if keyed.request is not None else None
        if parts is None or self._index is None or self._embedder is None:
            return None, None
        bucket, text = parts
        bucket = f"{tenant}:{bucket}" if keyed.rest is None else f"{tenant}:{bucket}:{keyed.rest}"
        vector = await self._embedder.embed(text)
        if vector is None:
            return None, None
        found = self._index.nearest(bucket, vector, self._config.semantic_threshold)
        if found is not None:
            entry = await self._store.get(found[0])
            if entry is None and self._store.reachable():  # gone (an outage is not a reason to forget it)
                self._index.forget(found[0])
                self.orphans += 1
            fresh = entry is not None and self._fresh(entry)
            if entry is not None and fresh and (answer := self._served(entry, exchange, found[1])) is not None:
                return answer, None
        return None, (bucket, vector)

    def _opted_in(self, exchange: Exchange) -> bool:
        model = exchange.models[0]
        return any(fnmatch.fnmatchcase(model, glob) for glob in self._config.semantic_models)

    def post(self, exchange: Exchange) -> None:
        if exchange.cache != "miss" or exchange.status != 200 or exchange.error is not None:
            return
        answer, notes = exchange.answer, exchange.notes
        if answer is None or notes is None or self.name not in notes:
            return  # a stream whose answer could not be kept (translated, too long, reasoning blocks)
        if len(answer) > self._config.max_entry_bytes:
            self.too_big += 1
            return
        key, ttl, near = notes[self.name]
        now = self._clock()
        self._store.put(key, Entry(exchange.format.name, answer, now, now + ttl, exchange.models[0]))
        self.stored += 1
        if near is not None and self._index is not None:
            self._index.add(near[0], key, near[1], now + ttl)
            if self._feed is not None:
                self._feed.publish(near[0], key, near[1], now + ttl)

    def _keyed(self, exchange: Exchange, rule: Cacheable) -> tuple[Keyed | None, bool]:
        """The request's key (None: not cached) and whether to look it up (not on a forced refresh)."""
        control = exchange.request.header("cache-control")
        control = control.lower() if control is not None else ""
        if "no-store" in control:
            return None, False
        models = self._config.models
        if models is not None and not any(fnmatch.fnmatchcase(exchange.models[0], glob) for glob in models):
            return None, False
        model = exchange.models[0]
        keyed = request_key(rule, exchange.format, exchange.converses, exchange.body, model)
        if keyed is None or not (keyed.deterministic or self._config.nondeterministic):
            return None, False
        return keyed, "no-cache" not in control

    def _ttl(self, exchange: Exchange) -> float:
        asked = exchange.request.header(_TTL_HEADER)
        if asked is None:
            return self._config.ttl
        longest = self._config.max_ttl
        try:
            ttl = float(asked)
        except ValueError:
            ttl = 0.0
        if not 0 < ttl <= longest:
            raise BadRequest(
                f"{_TTL_HEADER} must be a number of seconds above 0 and at most {longest:g}, got {asked!r}"
            )
        return ttl

    async def rescue(self, exchange: Exchange) -> Response | None:
        """Every target failed: an expired entry (within `stale_grace`) for a route `serve_stale` names."""
        notes = exchange.notes
        if exchange.cache != "miss" or notes is None or self.name not in notes or not self._config.serve_stale:
            return None
        if not any(fnmatch.fnmatchcase(exchange.models[0], glob) for glob in self._config.serve_stale):
            return None
        entry = await self._store.get(notes[self.name][0])
        if entry is None or entry.expires + self._config.stale_grace <= self._clock():
            return None
        answer = self._served(entry, exchange, result="stale")
        if answer is not None and exchange.headers:  # the gateway adds them: the miss said first is now stale
            exchange.headers = [h for h in exchange.headers if h[0] != "x-sidestep-cache"]
        return answer

    def _fresh(self, entry: Entry) -> bool:
        return entry.expires > self._clock()

    def _served(
        self, entry: Entry, exchange: Exchange, similarity: float | None = None, result: str = "hit"
    ) -> Response | None:
        source, client = client_format_named(entry.dialect), exchange.converses
        if source is None:  # written by a version that knew a format this one does not
            self.unservable += 1
            return None
        try:
            if source is exchange.format and not exchange.stream:  # as stored (a relayed-only API's answer too)
                body, kind = entry.body, _JSON
            elif client is None or not translatable(source):  # never: only a conversing format's entries are
                raise TypeError(f"{source.name} answers are not rewritten")  # rewritten or replayed
            elif exchange.stream:
                body = replayed(entry, source, client, client.include_usage(exchange.body))
                kind = replayed_type(client)
            else:
                body, kind = rewritten(entry, source, client), _JSON
        except _UNSERVABLE:
            self.unservable += 1
            return None
        age = max(0, int(self._clock() - entry.created))
        if similarity is not None:
            result = "semantic-hit"
        headers = [kind, ("x-sidestep-cache", result), ("x-sidestep-cache-age", str(age))]
        if similarity is not None:
            headers.append(("x-sidestep-cache-similarity", f"{similarity:.4f}"))
        if result != "stale":  # a stale answer goes out through the gateway, which adds these
            headers.append(("x-sidestep-request-id", exchange.request_id))
            if exchange.headers:
                headers.extend(exchange.headers)
        exchange.cache = result
        self.results[result] += 1
        return Response(200, body, headers)

    def _mark(self, exchange: Exchange, result: str) -> None:
        exchange.cache = result
        self.results[result] += 1
        header = ("x-sidestep-cache", result)
        if exchange.headers is None:
            exchange.headers = [header]
        else:
            exchange.headers.append(header)

    # Capabilities: metrics, the purge endpoint, lifecycle (the store's connections), reload (the store carries
    # over).

    def exposition(self) -> list[str]:
        lines = [
            "# HELP sidestep_cache_requests_total Cacheable requests by what the cache did.",
            "# TYPE sidestep_cache_requests_total counter",
            *(
                f"sidestep_cache_requests_total{{{labels(result=name)}}} {count}"
                for name, count in self.results.items()
            ),
            "# HELP sidestep_cache_stored_total Answers stored.",
            "# TYPE sidestep_cache_stored_total counter",
            f"sidestep_cache_stored_total {self.stored}",
            "# HELP sidestep_cache_too_big_total Answers not stored: over cache.max_entry_bytes.",
            "# TYPE sidestep_cache_too_big_total counter",
            f"sidestep_cache_too_big_total {self.too_big}",
        ]
        counters = self._store.counters()
        if self._index is not None and self._embedder is not None:
            counters = {
                **counters,
                "semantic_entries": len(self._index),
                "semantic_bytes": self._index.bytes,
                "semantic_evictions_total": self._index.evictions,
                "semantic_orphans_total": self.orphans,
                "semantic_embedding_failures_total": self._embedder.failures,
                **(self._feed.counters() if self._feed is not None else {}),
            }
        for name, value in counters.items():
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# TYPE sidestep_cache_{name} {kind}", f"sidestep_cache_{name} {value:g}"]
        return lines

    def endpoints(self) -> dict[str, Endpoint]:
        """The purge endpoint, when `cache.admin_key` turns it on."""
        if self._config.admin_key is None:
            return {}
        return {"/sidestep/cache/purge": Endpoint("cache_purge", self._purge, "POST", guarded=True)}

    async def _purge(self, request: Request, caller: Any, exchange: Exchange | None) -> Response:
        key = self._config.admin_key
        if key is None:  # endpoints() serves it only with a key
            raise NotFound("the cache purge endpoint is off: set cache.admin_key", code="not_found")
        return await purge_response(self._store, request, key, self._clock)

    def bind(self, send: SideRequest) -> None:
        """The semantic cache embeds through the gateway's routing (`SendsRequests`)."""
        if self._embedder is not None:
            self._embedder.bind(send)

    def start(self) -> None:
        self._store.start()
        if self._feed is not None:
            self._feed.start()

    def close(self) -> None:
        if self._feed is not None:  # None when a reload's successor took it
            self._feed.close()
        if not self._handed_over:
            self._store.close()

    def adopt(self, previous: Any) -> None:
        """Keep the entries across a reload when the store is configured the same."""
        if isinstance(previous, Cache) and _same_store(previous._config, self._config):
            self._store.close()
            self._store = previous._store
            previous._handed_over = True
            if self._index is not None and previous._index is not None:
                self._index = previous._index
                if self._feed is not None and previous._feed is not None:  # it follows into the kept index
                    self._feed.close()
                    self._feed, previous._feed = previous._feed, None


def _same_store(old: CacheConfig, new: CacheConfig) -> bool:
    fields = ("backend", "max_entries", "max_bytes", "redis_url", "redis_prefix", "redis_timeout")
    kept = [(config.stale_grace if config.serve_stale else 0.0) for config in (old, new)]
    return kept[0] == kept[1] and all(getattr(old, name) == getattr(new, name) for name in fields)


def build_cache(config: CacheConfig, clock: Callable[[], float]) -> Cache:
    """The cache `config` describes, with its store (Redis is imported only when configured)."""
    grace = config.stale_grace if config.serve_stale else 0.0  # kept past their TTL only to be served stale
    if config.backend == "redis":
        from sidestep.plugins.cache.redis_store import RedisStore  # an optional dependency

        store: Store = RedisStore(config.redis_url, config.redis_prefix, config.redis_timeout, grace=grace)
    else:
        store = MemoryStore(config.max_entries, config.max_bytes, clock, grace)
    if config.semantic_route is None:
        return Cache(config, store, clock)
    from sidestep.plugins.cache.ann import usearch_graphs  # usearch, when installed: big buckets get a graph
    from sidestep.plugins.cache.semantic import Embedder, SemanticIndex  # numpy: an optional dependency

    graphs = usearch_graphs()
    index = SemanticIndex(config.semantic_max_entries, clock, config.semantic_max_bytes, graphs)
    feed = None
    if config.backend == "redis":  # the vectors follow the entries into Redis, and every process follows them
        from sidestep.plugins.cache.redis_vectors import RedisVectorFeed

        life = config.max_ttl + grace
        feed = RedisVectorFeed(
            config.redis_url,
            config.redis_prefix,
            config.redis_timeout,
            index,
            clock,
            max_len=config.semantic_max_entries,
            life=life,
        )
    return Cache(config, store, clock, (index, Embedder(config.semantic_route)), feed)
