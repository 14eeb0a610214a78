"""Where plugins and observers come from: a config section → a factory, one row each.

`PLUGINS` are rebuilt from the config at start and on every reload (a factory returns None when its
section turns the plugin off); `OBSERVERS` are built once, when serving starts (their settings live in
`server`, which a reload does not change). Adding a plugin or an observer is one factory and one row here:
the gateway discovers what it can do (`sidestep.plugins.capabilities`) and neither `app.py` nor `serve.py`
names it. A plugin that is off may leave a word for the paths it would serve (`PluginEntry.off`), so a
client asking there learns why instead of meeting an unknown path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Protocol, TypeVar

from sidestep.batch import open_sink
from sidestep.config.model import Config
from sidestep.errors import ConfigError
from sidestep.observers.access_log import AccessLog
from sidestep.observers.metrics import Metrics
from sidestep.observers.request_log import RequestLog
from sidestep.outcome import Observer
from sidestep.plugins.base import Plugin
from sidestep.plugins.cache.plugin import build_cache
from sidestep.plugins.capabilities import HasLifecycle
from sidestep.plugins.governance import Governance
from sidestep.pricing import Pricing
from sidestep.routing.breaker import Breakers
from sidestep.routing.strategies import TargetStats

__all__ = ["OBSERVERS", "PLUGINS", "Host", "PluginEntry", "build_observers", "build_plugins", "off_paths"]


class Host(Protocol):
    """What an observer's factory may ask of the gateway it observes."""

    @property
    def breakers(self) -> Breakers: ...

    @property
    def stats(self) -> TargetStats: ...

    def configured(self, label: str) -> bool: ...

    def exported_metrics(self) -> list[str]: ...


PluginFactory = Callable[[Config, Callable[[], float]], Plugin | None]  # (config, wall clock)
ObserverFactory = Callable[[Config, Host], Observer | None]


@dataclass(frozen=True, slots=True)
class PluginEntry:
    section: str  # the config section that turns it on
    build: PluginFactory
    # Each path it serves when on → (its endpoint's name, why it is not served when off).
    off: Mapping[str, tuple[str, str]] = field(default_factory=dict)


def _cache(config: Config, clock: Callable[[], float]) -> Plugin | None:
    return build_cache(config.cache, clock) if config.cache.enabled else None


def _governance(config: Config, clock: Callable[[], float]) -> Plugin | None:
    if not config.governance.enabled:
        return None
    return Governance(config.governance, clock=clock, source=config.source, routes=config.routes)


def _mcp(config: Config, clock: Callable[[], float]) -> Plugin | None:
    if not config.mcp.enabled:
        return None
    try:  # the optional dependency: imported only by a config that uses it
        from sidestep.plugins.mcp.plugin import McpAgent, McpPlugin
    except ImportError as exc:
        reason = f"MCP servers need the mcp package: pip install 'sidestep[mcp]' ({exc})"
        raise ConfigError(reason, source=config.source, path="mcp") from exc
    if config.mcp.agent:
        return McpAgent(config.mcp, config.resilience.breaker, clock, keepalive=config.server.sse_keepalive)
    return McpPlugin(config.mcp, config.resilience.breaker, clock)


_NO_MCP = "No MCP servers are configured on this gateway (the mcp section is empty)."

PLUGINS: tuple[PluginEntry, ...] = (
    PluginEntry(
        "governance",
        _governance,
        {"/sidestep/key": ("key_info", "No virtual keys are configured on this gateway (governance is off).")},
    ),
    PluginEntry(
        "mcp",
        _mcp,
        {
            "/mcp": ("mcp", _NO_MCP),
            "/v1/mcp/tools/call": ("mcp_tool_call", _NO_MCP),
            "/sidestep/mcp": ("mcp_servers", _NO_MCP),
        },
    ),
    # After governance: a hit is still counted against the caller's rate limits, and served only to its tenant.
    # After mcp: the MCP tools a chat request is given are part of what its answer is cached under.
    PluginEntry("cache", _cache),
)


_Log = TypeVar("_Log")


def _open_log(config: Config, setting: str, build: Callable[[IO[bytes]], _Log]) -> _Log | None:
    """The log `server.<setting>` names (a file or stderr), or None when it is off."""
    target = getattr(config.server, setting)
    if target is None:
        return None
    try:
        sink = open_sink(target)
    except OSError as exc:
        reason = f"cannot open the {setting.replace('_', ' ')} '{target}': {exc.strerror or exc}"
        raise ConfigError(reason, source=config.source, path=f"server.{setting}") from exc
    return build(sink)


def _request_log(config: Config, host: Host) -> Observer | None:
    pricing = Pricing(config.governance.pricing)
    return _open_log(config, "request_log", lambda sink: RequestLog(sink, pricing, owns_sink=True))


def _access_log(config: Config, host: Host) -> Observer | None:
    return _open_log(config, "access_log", lambda sink: AccessLog(sink, owns_sink=True))


def _metrics(config: Config, host: Host) -> Observer | None:
    if not config.server.metrics:
        return None
    key = config.server.metrics_key
    return Metrics(
        host.breakers,
        stats=host.stats,
        configured=host.configured,
        exported=host.exported_metrics,
        key=key.reveal() if key is not None else None,
    )


OBSERVERS: tuple[tuple[str, ObserverFactory], ...] = (
    ("server.request_log", _request_log),
    ("server.access_log", _access_log),
    ("server.metrics", _metrics),
)


def build_plugins(config: Config, clock: Callable[[], float]) -> list[Plugin]:
    """The plugins `config` turns on, in registry order."""
    return [plugin for entry in PLUGINS if (plugin := entry.build(config, clock)) is not None]


def off_paths() -> dict[str, tuple[str, str]]:
    """Paths plugins serve when on → (endpoint name, why not): the gateway answers those no plugin serves."""
    return {path: off for entry in PLUGINS for path, off in entry.off.items()}


def build_observers(config: Config, host: Host) -> list[Observer]:
    """The observers `config.server` turns on, in registry order. A log that cannot be opened is a
    `ConfigError` (the ones opened before it are closed)."""
    built: list[Observer] = []
    try:
        for _, build in OBSERVERS:
            observer = build(config, host)
            if observer is not None:
                built.append(observer)
    except ConfigError:
        for observer in built:
            if isinstance(observer, HasLifecycle):
                observer.close()
        raise
    return built
