"""The MCP gateway plugin (needs the optional `mcp` package)."""
