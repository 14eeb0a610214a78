"""The `mcp:` section: valid servers build the model; hostile or mistaken values name key path and reason."""

from __future__ import annotations

from typing import Any

import pytest

from sidestep.config.load import parse_config
from sidestep.errors import ConfigError, ConfigErrors

ENV = {"TOKEN": "s3cret-token", "CHILD_SECRET": "x"}


def _parse(mcp: Any, **top: Any) -> Any:
    return parse_config({"mcp": mcp, **top}, source="t.yaml", env=ENV)


def _error(mcp: Any, **top: Any) -> str:
    with pytest.raises((ConfigError, ConfigErrors)) as caught:
        _parse(mcp, **top)
    return str(caught.value)


def test_stdio_and_url_servers_build_the_model() -> None:
    config = _parse(
        {
            "separator": ".",
            "servers": {
                "files": {"command": "python", "args": ["-m", "srv", 8080], "env": {"KEY": "env:CHILD_SECRET"}},
                "github": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "env:TOKEN"}},
                "old": {"url": "http://127.0.0.1:9000/sse", "transport": "sse", "timeout": 5, "fallback": ["github"]},
            },
        }
    ).mcp
    assert config.enabled and config.separator == "."
    files, github, old = config.servers["files"], config.servers["github"], config.servers["old"]
    assert (files.transport, files.command, files.args) == ("stdio", "python", ("-m", "srv", "8080"))
    assert files.env[0][0] == "KEY" and files.env[0][1].reveal() == "x"
    assert github.transport == "http" and github.headers[0][1].reveal() == "s3cret-token"
    assert "s3cret" not in repr(github)  # secrets never show in a repr
    assert (old.transport, old.timeout, old.fallback) == ("sse", 5.0, ("github",))


def test_no_section_is_off() -> None:
    assert not parse_config({}, env=ENV).mcp.enabled


@pytest.mark.parametrize(
    ("mcp", "expected"),
    [
        ("servers", "mcp: expected a mapping"),
        ({"servers": ["a"]}, "mcp.servers: expected a mapping"),
        ({"servers": {"a": "python srv.py"}}, "mcp.servers.a: expected a mapping with `command`"),
        ({"servers": {"a": {}}}, "either `command` (run over stdio) or `url`"),
        ({"servers": {"a": {"command": "x", "url": "http://h"}}}, "either `command`"),
        ({"servers": {"a": {"command": 3}}}, "mcp.servers.a.command: expected a non-empty string, got int 3"),
        ({"servers": {"a": {"command": "x", "args": "-v"}}}, "mcp.servers.a.args: expected a list"),
        ({"servers": {"a": {"command": "x", "args": [{"k": 1}]}}}, "mcp.servers.a.args[0]: expected a string"),
        ({"servers": {"a": {"command": "x", "env": {"BAD NAME": "1"}}}}, "env.BAD NAME: not an environment"),
        ({"servers": {"a": {"command": "x", "env": {"K": "env:UNSET"}}}}, "environment variable UNSET is not set"),
        ({"servers": {"a": {"command": "x", "transport": "http"}}}, "a server with `command` speaks stdio"),
        ({"servers": {"a": {"command": "x", "comand": 1}}}, "mcp.servers.a.comand: unknown key — did you mean"),
        ({"servers": {"a": {"url": "ftp://h/x"}}}, "expected an http:// or https:// URL with a host"),
        ({"servers": {"a": {"url": "http:///nohost"}}}, "expected an http:// or https:// URL with a host"),
        ({"servers": {"a": {"url": "http://h:99999/"}}}, "mcp.servers.a.url: not a valid URL"),
        ({"servers": {"a": {"url": "http://h/a b"}}}, "whitespace or a control character"),
        ({"servers": {"a": {"url": "http://h", "transport": "ws"}}}, "expected http (Streamable HTTP) or sse"),
        ({"servers": {"a": {"url": "http://h", "headers": {"X": "a\r\nEvil: 1"}}}}, "line break or NUL"),
        ({"servers": {"a": {"url": "http://h", "headers": {"Bad Header": "1"}}}}, "not an HTTP header name"),
        ({"servers": {"a": {"url": "http://h", "timeout": -1}}}, "mcp.servers.a.timeout: expected a positive"),
        ({"servers": {"a": {"url": "http://h", "fallback": ["b"]}}}, "fallback[0]: unknown MCP server 'b'"),
        ({"servers": {"a": {"url": "http://h", "fallback": ["a"]}}}, "cannot be its own fallback"),
        ({"servers": {"a b": {"url": "http://h"}}}, "mcp.servers.a b: a server name is 1-64 letters"),
        ({"servers": {"git__hub": {"url": "http://h"}}}, "must not contain the separator '__'"),
        ({"separator": "/", "servers": {}}, "mcp.separator: expected 1-8 of letters"),
        ({"servers": {}, "max_tools": 0}, "mcp.max_tools: expected an integer between 1 and 100000"),
        ({"servers": {}, "restart_backoff": 5, "restart_max": 1}, "must be at least restart_backoff"),
        ({"servers": {}, "keys": {"nobody": ["a"]}}, "mcp.keys.nobody: unknown virtual key 'nobody'"),
        ({"server": {}}, "mcp.server: unknown key — did you mean 'servers'?"),
        ({"servers": {}, "chat": {"route": {}}}, "mcp.chat.route: unknown key — did you mean 'routes'?"),
        ({"servers": {}, "chat": {"routes": {"gpt": ["nope"]}}}, "mcp.chat.routes.gpt[0]: unknown MCP server 'nope'"),
        ({"servers": {}, "chat": {"routes": {"gpt": "a"}}}, "mcp.chat.routes.gpt: expected a list"),
        ({"servers": {}, "chat": {"keys": {"nobody": []}}}, "mcp.chat.keys.nobody: unknown virtual key"),
        ({"servers": {}, "chat": ["a"]}, "mcp.chat: expected a mapping"),
        ({"servers": {}, "limits": {"key_calls_per_minute": 0}}, "mcp.limits.key_calls_per_minute: expected an"),
        ({"servers": {}, "limits": {"tools": {"a__*": "ten"}}}, "mcp.limits.tools.a__*: expected an integer"),
        ({"servers": {}, "limits": {"per_key": 1}}, "mcp.limits.per_key: unknown key"),
        ({"servers": {}, "log_arguments": "yes"}, "mcp.log_arguments: expected true or false"),
        ({"servers": {}, "agent": {"max_steps": 0}}, "mcp.agent.max_steps: expected an integer between 1 and 100"),
        ({"servers": {}, "agent": {"timeout": "soon"}}, "mcp.agent.timeout: expected a positive number"),
        ({"servers": {}, "agent": {"keys": ["nobody"]}}, "mcp.agent.keys[0]: unknown virtual key 'nobody'"),
        ({"servers": {}, "agent": {"route": []}}, "mcp.agent.route: unknown key — did you mean 'routes'?"),
    ],
)
def test_mistakes_name_the_key_and_reason(mcp: Any, expected: str) -> None:
    assert expected in _error(mcp)


def test_a_secret_in_a_bad_header_is_never_echoed() -> None:
    message = _error({"servers": {"a": {"url": "http://h", "headers": {"X": "tok\nen-s3cret"}}}})
    assert "s3cret" not in message


def test_allow_lists_name_virtual_keys() -> None:
    governance = {"keys": {"alice": {"key": "sk-alice"}}}
    config = _parse({"servers": {"a": {"url": "http://h"}}, "keys": {"alice": ["a", "b__*"]}}, governance=governance)
    assert config.mcp.keys == {"alice": ("a", "b__*")}
    assert "mcp.keys.alice[0]: expected a non-empty string" in _error({"keys": {"alice": [1]}}, governance=governance)


def test_chat_tools_per_route_and_key() -> None:
    governance = {"keys": {"alice": {"key": "sk-alice"}}}
    chat = {"routes": {"gpt": ["a", "a"]}, "keys": {"alice": ["a"]}}
    config = _parse({"servers": {"a": {"url": "http://h"}}, "chat": chat}, governance=governance)
    assert (config.mcp.chat_routes, config.mcp.chat_keys) == ({"gpt": ("a",)}, {"alice": ("a",)})
    assert not config.mcp.agent
    agent = {"routes": ["gpt"], "keys": ["alice"], "max_steps": 3, "timeout": 5}
    config = _parse({"servers": {}, "agent": agent}, governance=governance)
    assert (config.mcp.agent_routes, config.mcp.agent_keys, config.mcp.agent_max_steps) == ({"gpt"}, {"alice"}, 3)


def test_every_mistake_is_reported_in_one_run() -> None:
    message = _error({"servers": {"a": {"command": 1}, "b": {"url": "gopher://x"}}})
    assert "mcp.servers.a.command" in message and "mcp.servers.b.url" in message
