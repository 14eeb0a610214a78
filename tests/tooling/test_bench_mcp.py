"""Keeps `python -m bench.mcp_latency` from rotting: a short run produces every figure for every path (direct,
through `/mcp`, through `/v1/mcp/tools/call`). No timing is asserted: shared machines are noisy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_a_short_mcp_latency_run_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "mcp.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.mcp_latency", "--calls", "20", "--slice", "10", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    for path in ("direct", "proxied", "proxied_json"):
        figures = result[path]
        assert figures["n"] == 20 and 0 < figures["median"] <= figures["p90"]
        assert figures["server_cpu_ms_per_call"] >= 0 and figures["gateway_cpu_ms_per_call"] >= 0  # 10 ms ticks
    assert "added by the gateway (median)" in done.stdout
