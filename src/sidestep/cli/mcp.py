"""`sidestep mcp list` and `sidestep mcp call SERVER TOOL --args JSON`: a running gateway's MCP servers.

Both ask the gateway (`--url`, with the virtual key in `--key` or `SIDESTEP_KEY`), not the MCP servers: what
they show is what the gateway sees — each server's health, its breaker, the tools the key may use — and a call
goes through the same allow-lists, failover and request log as any client's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("mcp", help="list a running gateway's MCP servers, or call one of their tools")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway (default: %(default)s)")
    parser.add_argument("--key", default=None, help="a virtual key (default: $SIDESTEP_KEY)")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="servers, their health and tools").set_defaults(func=_list)
    call = actions.add_parser("call", help="call a tool through the gateway")
    call.add_argument("server")
    call.add_argument("tool")
    call.add_argument("--args", default="{}", help="the arguments as a JSON object (default: {})")
    call.set_defaults(func=_call)


def _list(args: argparse.Namespace) -> int:
    listing = _ask(args, "/sidestep/mcp")
    if listing is None:
        return 1
    for server in listing["servers"]:
        state = server["state"] + (f" ({server['error']})" if server.get("error") else "")
        print(
            f"{server['server']}  {server['transport']}  {state}  breaker {server['breaker']}  "
            f"restarts {server['restarts']}  tools {len(server['tools'])}"
        )
        for tool in server["tools"]:
            print(f"    {server['server']}{listing['separator']}{tool}")
    return 0


def _call(args: argparse.Namespace) -> int:
    try:
        arguments = json.loads(args.args)
    except json.JSONDecodeError as exc:
        print(f"sidestep mcp call: --args is not JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(arguments, dict):
        print('sidestep mcp call: --args must be a JSON object, like \'{"path": "/tmp"}\'', file=sys.stderr)
        return 2
    listing = _ask(args, "/sidestep/mcp")
    if listing is None:
        return 1
    name = f"{args.server}{listing['separator']}{args.tool}"
    result = _ask(args, "/v1/mcp/tools/call", {"name": name, "arguments": arguments})
    if result is None:
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 1 if result.get("isError") else 0


def _ask(args: argparse.Namespace, path: str, body: dict[str, Any] | None = None) -> Any:
    """The gateway's JSON answer, or None after saying on stderr why there is none."""
    headers = {"content-type": "application/json"}
    key = args.key or os.environ.get("SIDESTEP_KEY")
    if key:
        headers["authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(args.url.rstrip("/") + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        print(f"sidestep mcp: {exc.code} {message}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"sidestep mcp: cannot reach the gateway at {args.url}: {exc}", file=sys.stderr)
    return None
