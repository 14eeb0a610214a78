"""Tools in chat: the MCP tools a chat request asks for, added to it in the client's own format.

A chat request (OpenAI chat completions, Anthropic messages, Gemini, Bedrock Converse) gets the tools of the MCP
servers it names in the `x-sidestep-mcp` header (`github,search`), of those `mcp.chat.routes` gives its route and
of those `mcp.chat.keys` gives its virtual key — only the tools the caller's allow-list (`mcp.keys`) lets it use,
named as in the `/mcp` catalogue (`server__tool`). The tools are built as the canonical model's `Tool`s and
written by the client's format object, so they travel on to any provider exactly like tools the client sent
itself (translated through the canonical model when the target speaks another format). A tool the client
already sent under the same name is kept, not doubled.

The model's tool calls go back to the client (pass-through), which runs them through `/mcp` or
`POST /v1/mcp/tools/call`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sidestep.config.model import McpConfig
from sidestep.core.model import ChatRequest, Tool
from sidestep.errors import BadRequest
from sidestep.formats.base import Converses
from sidestep.formats.body import field
from sidestep.outcome import Exchange
from sidestep.plugins.mcp.front import Front

__all__ = ["CHAT_OPERATIONS", "HEADER", "add_tools", "chat_tools", "wanted_servers"]

HEADER = "x-sidestep-mcp"
CHAT_OPERATIONS = frozenset({"chat", "messages", "converse"})  # converse: Bedrock's Converse(Stream)


def wanted_servers(exchange: Exchange, config: McpConfig) -> list[str]:
    """The servers whose tools this request gets: its header's, its route's, its key's (in that order)."""
    names: dict[str, None] = {}
    raw = exchange.request.header(HEADER)
    if raw is not None:
        for item in raw.split(","):
            name = item.strip()
            if not name:
                continue
            if name not in config.servers:
                known = ", ".join(sorted(config.servers))
                raise BadRequest(f"{HEADER} names an unknown MCP server '{name[:64]}' (known: {known})", param=HEADER)
            names[name] = None
    if config.chat_routes and exchange.models:
        names.update(dict.fromkeys(config.chat_routes.get(exchange.models[0], ())))
    if config.chat_keys and exchange.principal is not None:
        names.update(dict.fromkeys(config.chat_keys.get(getattr(exchange.principal, "name", ""), ())))
    return list(names)


def chat_tools(front: Front, caller: Any, servers: Iterable[str]) -> list[Tool]:
    """The canonical tools of `servers` that `caller` may use, named `server<separator>tool`."""
    return [
        Tool(name=f"{server}{front.sep}{tool.name}", description=tool.description, parameters=dict(tool.input_schema))
        for server in servers
        for tool in front.upstreams[server].catalogue.tools
        if front.allows(caller, server, tool.name)
    ]


def add_tools(exchange: Exchange, client: Converses, tools: list[Tool]) -> None:
    """Append `tools` to the request's body, written by its client format (`client`); the client's own first."""
    if not tools:
        return
    written = client.write_request(ChatRequest(model="", messages=[], tools=tools))
    if "toolConfig" in written:  # Bedrock's Converse holds its tools in `toolConfig.tools`
        config = field(exchange.body, "toolConfig") or {}
        if not isinstance(config, dict):
            raise BadRequest("toolConfig: must be an object.", param="toolConfig")
        exchange.body["toolConfig"] = {**config, "tools": _joined(config.get("tools"), written["toolConfig"]["tools"])}
        return
    exchange.body["tools"] = _joined(field(exchange.body, "tools"), written.get("tools") or [])


def _joined(existing: Any, written: list[Any]) -> list[Any]:
    """The client's own tools, then those of `written` it did not send itself."""
    existing = existing or []
    if not isinstance(existing, list):
        raise BadRequest("`tools` must be an array.", param="tools")
    taken = {_name(tool) for tool in existing}
    return [*existing, *(tool for tool in written if _name(tool) not in taken)]


def _name(tool: Any) -> Any:
    """A tool's name in any client format (OpenAI nests it under `function`, Bedrock under `toolSpec`)."""
    if not isinstance(tool, dict):
        return None
    nested = tool.get("function") or tool.get("toolSpec")
    return nested.get("name") if isinstance(nested, dict) else tool.get("name")
