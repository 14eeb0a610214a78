"""The README's MCP section runs as written: its config parses, and its client example (cut out of README.md,
only the gateway's URL and the key filled in) connects to a running gateway with the `mcp` SDK, lists the tools
and calls one. An example that imports what the SDK does not export, or that no longer works, fails here."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from sidestep.config.load import parse_config
from sidestep.testing import running_gateway

README = Path(__file__).parents[2] / "README.md"
SERVER = str(Path(__file__).parents[1] / "mcp_server.py")
ALICE = "sk-alice-readme"


def _section() -> str:
    text = README.read_text()
    start = text.index("## MCP gateway")
    return text[start : text.index("\n## ", start + 1)]


def _block(language: str, marker: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", _section(), flags=re.S)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"expected one {language} block with {marker!r} in the README's MCP section"
    return str(found[0])


def _filled(code: str, **values: str) -> str:
    """`NAME = "…"` lines given their test values; each must be there exactly once."""
    for name, value in values.items():
        code, count = re.subn(rf'^{name} = ".*"$', f"{name} = {value!r}", code, flags=re.M)
        assert count == 1, f"the README's example has no single `{name} = ...` line"
    return code


def test_the_readme_config_parses() -> None:
    raw = yaml.safe_load(_block("yaml", "mcp:"))
    config = parse_config(raw, source="README.md", env={"ALICE_KEY": "k", "GITHUB_MCP_TOKEN": "t"})
    assert set(config.mcp.servers) == {"files", "github", "github2"}
    assert config.mcp.servers["github"].fallback == ("github2",)


async def test_the_readme_client_example_lists_and_calls_through_the_gateway() -> None:
    code = _block("python", "ClientSession")
    assert not re.search(r"\b_\w+|\._", code), "the example reaches into a private module or name"
    config: dict[str, Any] = {
        "governance": {"keys": {"alice": {"key": ALICE}}},
        "mcp": {"servers": {"files": {"command": sys.executable, "args": [SERVER, "files"], "timeout": 10}}},
    }
    async with running_gateway(config) as gw:
        plugin: Any = gw.gateway.plugin("mcp")
        assert await plugin.front.upstreams["files"].ready(30)
        script = _filled(code, GATEWAY=f"{gw.url}/mcp", KEY=ALICE)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    listed, called = out.decode().splitlines()[:2]
    assert "'files__read_file'" in listed and "'files__echo'" in listed
    assert "files: the text of /srv/docs/README.md" in called and "is_error=False" in called
