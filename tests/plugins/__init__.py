"""Unit tests of `sidestep.plugins`: governance's pure parts and its spend store, the MCP ASGI adapter."""
