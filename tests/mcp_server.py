"""A small real MCP server for the tests, built with the `mcp` SDK: run over stdio or Streamable HTTP.

    python tests/mcp_server.py NAME                     # stdio
    python tests/mcp_server.py NAME --http PORT         # Streamable HTTP on 127.0.0.1:PORT/mcp
    python tests/mcp_server.py NAME --sse PORT          # the legacy SSE transport on 127.0.0.1:PORT/sse

Tools: `echo` (says who answered), `add`, `slow` (sleeps), `crash` (the process exits at once), `grow`
(adds a tool `extra` and tells the client its tool list changed), `read_file` (a made-up file's text, for the
README's example) and `pid` (the server's process id). One resource and one prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from mcp.server.mcpserver import Context, MCPServer


def build(name: str) -> MCPServer:
    app = MCPServer(name)

    @app.tool()
    def echo(text: str) -> str:
        """Say `text` back, with the server's name."""
        return f"{name}: {text}"

    @app.tool()
    def add(a: int, b: int) -> int:
        """a + b."""
        return a + b

    @app.tool()
    async def slow(seconds: float) -> str:
        """Answer after `seconds`."""
        await asyncio.sleep(seconds)
        return "late"

    @app.tool()
    def crash() -> str:
        """End the server's process at once."""
        os._exit(3)

    @app.tool()
    async def grow(ctx: Context) -> str:
        """Add the tool `extra` and announce it."""

        def extra() -> str:
            """Added at run time."""
            return "extra"

        app.add_tool(extra)
        await ctx.session.send_tool_list_changed()
        return "grown"

    @app.tool()
    def read_file(path: str) -> str:
        """The text of the file at `path` (made up: nothing is read)."""
        return f"{name}: the text of {path}"

    @app.tool()
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    @app.resource("note://readme")
    def readme() -> str:
        """A note."""
        return f"the {name} server"

    @app.prompt()
    def greet(who: str) -> str:
        """Greet someone."""
        return f"Say hello to {who}."

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--http", type=int, default=None)
    parser.add_argument("--sse", type=int, default=None)
    args = parser.parse_args()
    app = build(args.name)
    if args.http is not None:
        app.run("streamable-http", host="127.0.0.1", port=args.http, json_response=True)
    elif args.sse is not None:
        app.run("sse", host="127.0.0.1", port=args.sse)
    else:
        app.run("stdio")
        print(f"mcp server {args.name} stopped", file=sys.stderr, flush=True)  # its stdin closed: a clean stop


if __name__ == "__main__":
    main()
