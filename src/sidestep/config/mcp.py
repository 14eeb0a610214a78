"""The `mcp:` section: upstream MCP servers the gateway connects to, and who may use their tools.

```yaml
mcp:
  separator: "__"                  # github__create_issue
  log_arguments: false             # the request log keeps each tool call's arguments (they may hold secrets)
  servers:
    files: {command: npx, args: ["-y", "@modelcontextprotocol/server-filesystem", /srv], env: {DEBUG: "0"}}
    github: {url: "https://mcp.example.com/mcp", headers: {Authorization: "env:GITHUB_MCP_TOKEN"}}
    legacy: {url: "http://127.0.0.1:9000/sse", transport: sse}
  keys:                            # virtual key → servers or server__tool globs it may use
    alice: [files, "github__list_*"]
  chat:                            # tools added to chat requests (besides those `x-sidestep-mcp` asks for)
    routes: {gpt-4o: [github]}     # route (model) name → servers whose tools its requests get
    keys: {alice: [files]}         # virtual key → servers whose tools its requests get
  agent:                           # agent mode: the gateway runs the model's MCP tool calls and loops
    routes: [gpt-4o]               # routes (model names) and virtual keys it is on for
    keys: [alice]
    max_steps: 8                   # model turns at most
    timeout: 120                   # seconds for the whole loop
  limits:                          # tool calls per minute
    key_calls_per_minute: 120      # each virtual key, across every tool
    tools: {"github__create_*": 10}  # each tool matching a glob, across every caller (first match counts)
```
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from sidestep.config.fields import (
    Ctx,
    as_bool,
    as_int,
    as_list,
    as_mapping,
    as_opt_str,
    as_str,
    as_str_list,
    kind_of,
    positive,
    secret,
    suggest,
)
from sidestep.config.model import McpConfig, McpServerConfig, Secret

__all__ = ["parse_mcp"]

_TOP_KEYS = {
    "servers",
    "separator",
    "keys",
    "max_tools",
    "restart_backoff",
    "restart_max",
    "chat",
    "agent",
    "limits",
    "log_arguments",
}
_LIMIT_KEYS = {"key_calls_per_minute", "tools"}
_CHAT_KEYS = {"routes", "keys"}
_AGENT_KEYS = {"routes", "keys", "max_steps", "timeout"}
_COMMON_KEYS = {"transport", "timeout", "fallback"}
_STDIO_KEYS = _COMMON_KEYS | {"command", "args", "env", "cwd"}
_URL_KEYS = _COMMON_KEYS | {"url", "headers"}
# Server names end up inside tool names, which MCP clients and model APIs restrict to about this alphabet.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SEPARATOR = re.compile(r"[A-Za-z0-9_.-]{1,8}")
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)


def parse_mcp(ctx: Ctx, value: Any, virtual_keys: Collection[str] = ()) -> McpConfig:
    """`virtual_keys`: the names under `governance.keys`, which `mcp.keys` must name."""
    raw = as_mapping(ctx, value, "mcp", _TOP_KEYS)
    separator = as_str(ctx, raw.get("separator", "__"), "mcp.separator")
    if not _SEPARATOR.fullmatch(separator):
        raise ctx.fail("mcp.separator", f"expected 1-8 of letters, digits, '_', '-' or '.', got {separator!r}")
    servers: dict[str, McpServerConfig] = {}
    for name, item in as_mapping(ctx, raw.get("servers", {}), "mcp.servers").items():
        server = ctx.attempt(_server, ctx, name, item, separator, broken=f"mcp:{name}")
        if server is not None:
            servers[name] = server
    for server in servers.values():
        ctx.attempt(_check_fallback, ctx, server, servers)
    keys = {
        name: tuple(ctx.attempt(_allowed, ctx, name, item, virtual_keys) or ())
        for name, item in as_mapping(ctx, raw.get("keys", {}), "mcp.keys").items()
    }
    chat = as_mapping(ctx, raw.get("chat", {}), "mcp.chat", _CHAT_KEYS)
    chat_routes = _chat_servers(ctx, chat.get("routes", {}), "mcp.chat.routes", servers)
    chat_keys = _chat_servers(ctx, chat.get("keys", {}), "mcp.chat.keys", servers)
    for name in chat_keys:
        if name not in virtual_keys and f"key:{name}" not in ctx.broken:
            raise ctx.fail(f"mcp.chat.keys.{name}", f"unknown virtual key '{name}'{suggest(name, virtual_keys)}")
    agent = as_mapping(ctx, raw.get("agent", {}), "mcp.agent", _AGENT_KEYS)
    agent_keys = as_str_list(ctx, agent.get("keys", []), "mcp.agent.keys")
    for i, name in enumerate(agent_keys):
        if name not in virtual_keys and f"key:{name}" not in ctx.broken:
            raise ctx.fail(f"mcp.agent.keys[{i}]", f"unknown virtual key '{name}'{suggest(name, virtual_keys)}")
    limits = as_mapping(ctx, raw.get("limits", {}), "mcp.limits", _LIMIT_KEYS)
    per_key = limits.get("key_calls_per_minute")
    tools = as_mapping(ctx, limits.get("tools", {}), "mcp.limits.tools")
    backoff = positive(ctx, raw.get("restart_backoff", 0.5), "mcp.restart_backoff")
    longest = positive(ctx, raw.get("restart_max", 30.0), "mcp.restart_max")
    if longest < backoff:
        raise ctx.fail("mcp.restart_max", f"must be at least restart_backoff ({backoff:g})")
    return McpConfig(
        servers=servers,
        separator=separator,
        keys=keys,
        max_tools=as_int(ctx, raw.get("max_tools", 1000), "mcp.max_tools", 1, 100_000),
        restart_backoff=backoff,
        restart_max=longest,
        chat_routes=chat_routes,
        chat_keys=chat_keys,
        agent_routes=frozenset(as_str_list(ctx, agent.get("routes", []), "mcp.agent.routes")),
        agent_keys=frozenset(agent_keys),
        agent_max_steps=as_int(ctx, agent.get("max_steps", 8), "mcp.agent.max_steps", 1, 100),
        agent_timeout=positive(ctx, agent.get("timeout", 120.0), "mcp.agent.timeout"),
        log_arguments=as_bool(ctx, raw.get("log_arguments", False), "mcp.log_arguments"),
        key_calls_per_minute=None
        if per_key is None
        else as_int(ctx, per_key, "mcp.limits.key_calls_per_minute", 1, 1_000_000),
        tool_calls_per_minute=tuple(
            (glob, as_int(ctx, n, f"mcp.limits.tools.{glob}", 1, 1_000_000)) for glob, n in tools.items()
        ),
    )


def _server(ctx: Ctx, name: str, value: Any, separator: str) -> McpServerConfig:
    path = f"mcp.servers.{name}"
    if not _NAME.fullmatch(name):
        raise ctx.fail(path, "a server name is 1-64 letters, digits, '_' or '-' (it prefixes its tools' names)")
    if separator in name:
        raise ctx.fail(path, f"a server name must not contain the separator {separator!r}")
    if not isinstance(value, dict):
        raise ctx.fail(path, f"expected a mapping with `command` (stdio) or `url`, got {kind_of(value)}")
    if ("command" in value) == ("url" in value):
        raise ctx.fail(path, "a server needs either `command` (run over stdio) or `url` (Streamable HTTP or SSE)")
    timeout = positive(ctx, value.get("timeout", 30.0), f"{path}.timeout")
    fallback = tuple(as_str_list(ctx, value.get("fallback", []), f"{path}.fallback"))
    if "command" in value:
        raw = as_mapping(ctx, value, path, _STDIO_KEYS)
        transport = raw.get("transport", "stdio")
        if transport != "stdio":
            raise ctx.fail(f"{path}.transport", f"a server with `command` speaks stdio, got {kind_of(transport)}")
        return McpServerConfig(
            name=name,
            transport="stdio",
            command=as_str(ctx, raw["command"], f"{path}.command"),
            args=tuple(_args(ctx, raw.get("args", []), f"{path}.args")),
            env=_secrets(ctx, raw.get("env", {}), f"{path}.env", env_name=True),
            cwd=as_opt_str(ctx, raw.get("cwd"), f"{path}.cwd"),
            timeout=timeout,
            fallback=fallback,
        )
    raw = as_mapping(ctx, value, path, _URL_KEYS)
    transport = raw.get("transport", "http")
    if transport not in ("http", "sse"):
        raise ctx.fail(f"{path}.transport", f"expected http (Streamable HTTP) or sse, got {kind_of(transport)}")
    return McpServerConfig(
        name=name,
        transport=transport,
        url=_url(ctx, raw["url"], f"{path}.url"),
        headers=_secrets(ctx, raw.get("headers", {}), f"{path}.headers", env_name=False),
        timeout=timeout,
        fallback=fallback,
    )


def _args(ctx: Ctx, value: Any, path: str) -> list[str]:
    """Arguments as the YAML has them; numbers are taken as their text (`args: [--port, 8080]`)."""
    args = []
    for i, item in enumerate(as_list(ctx, value, path)):
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise ctx.fail(f"{path}[{i}]", f"expected a string, got {kind_of(item)}")
        args.append(str(item))
    return args


def _secrets(ctx: Ctx, value: Any, path: str, *, env_name: bool) -> tuple[tuple[str, Secret], ...]:
    pairs = []
    for key, item in as_mapping(ctx, value, path).items():
        valid = key.isidentifier() if env_name else bool(_HEADER.fullmatch(key))
        if not valid or "\x00" in key:
            what = "an environment variable name" if env_name else "an HTTP header name"
            raise ctx.fail(f"{path}.{key}", f"not {what}")
        if isinstance(item, int | float) and not isinstance(item, bool):
            item = str(item)
        found = secret(ctx, item, f"{path}.{key}")
        if any(c in found.reveal() for c in "\r\n\x00"):  # a header split, or a truncated C string for a child
            raise ctx.fail(f"{path}.{key}", "the value holds a line break or NUL (not shown: it may be a secret)")
        pairs.append((key, found))
    return tuple(pairs)


def _url(ctx: Ctx, value: Any, path: str) -> str:
    url = as_str(ctx, value, path)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises on a port that is not a number or out of range
    except ValueError as exc:
        raise ctx.fail(path, f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ctx.fail(path, f"expected an http:// or https:// URL with a host, got {url!r}")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ctx.fail(path, "the URL holds whitespace or a control character")
    return url


def _check_fallback(ctx: Ctx, server: McpServerConfig, servers: Mapping[str, McpServerConfig]) -> None:
    for i, other in enumerate(server.fallback):
        where = f"mcp.servers.{server.name}.fallback[{i}]"
        if other == server.name:
            raise ctx.fail(where, "a server cannot be its own fallback")
        if other not in servers and f"mcp:{other}" not in ctx.broken:
            known = ", ".join(sorted(servers))
            raise ctx.fail(where, f"unknown MCP server '{other}'{suggest(other, servers)} (known: {known})")


def _allowed(ctx: Ctx, name: str, value: Any, virtual_keys: Collection[str]) -> list[str]:
    path = f"mcp.keys.{name}"
    if name not in virtual_keys and f"key:{name}" not in ctx.broken:
        listed = ", ".join(sorted(virtual_keys)) or "none defined under governance.keys"
        raise ctx.fail(path, f"unknown virtual key '{name}'{suggest(name, virtual_keys)} (known: {listed})")
    return as_str_list(ctx, value, path)


def _chat_servers(
    ctx: Ctx, value: Any, path: str, servers: Mapping[str, McpServerConfig]
) -> dict[str, tuple[str, ...]]:
    """A name → the configured servers whose tools its chat requests get."""
    found: dict[str, tuple[str, ...]] = {}
    for name, item in as_mapping(ctx, value, path).items():
        names = as_str_list(ctx, item, f"{path}.{name}")
        for i, server in enumerate(names):
            if server not in servers and f"mcp:{server}" not in ctx.broken:
                where = f"{path}.{name}[{i}]"
                raise ctx.fail(where, f"unknown MCP server '{server}'{suggest(server, servers)}")
        found[name] = tuple(dict.fromkeys(names))
    return found
