"""The latency a proxied MCP tool call adds: the same tool called directly and through the gateway, in one run.

    .venv/bin/python -m bench.mcp_latency [--calls 600] [--slice 50] [--json FILE]

One MCP server built with the SDK (tests/mcp_server.py over Streamable HTTP, JSON answers) and one `sidestep
serve` process that lists it under `mcp.servers` (processes of their own). From this process, one SDK
`ClientSession` each — to the server's `/mcp` (direct) and to the gateway's `/mcp` (proxied) — call the same
tool (`add`) in alternating slices, so both see the same machine state; also `POST /v1/mcp/tools/call` on a
keep-alive connection (the gateway without an MCP client session of its own in front). Each path is warmed up
first. Reported: median, p90 and mean in ms per path, what the gateway adds (the medians' difference), and the
gateway process's CPU time per call on each path (from /proc: steadier than wall time on a shared machine).
Sequential calls, one at a time: latency, not throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx2
import yaml
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from bench.procs import Proc, free_port, start, wait_http

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "mcp_server.py"
WARMUP = 50

Call = Callable[[], Awaitable[Any]]


async def _session(stack: AsyncExitStack, url: str) -> ClientSession:
    http = await stack.enter_async_context(httpx2.AsyncClient(timeout=30))
    read, write = await stack.enter_async_context(streamable_http_client(url, http_client=http))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


async def _timed(call: Call, n: int, into: list[float]) -> None:
    for _ in range(n):
        began = time.perf_counter()
        await call()
        into.append((time.perf_counter() - began) * 1000)


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered), 3),
        "p90": round(ordered[int(len(ordered) * 0.9)], 3),
        "mean": round(statistics.fmean(ordered), 3),
        "n": len(ordered),
    }


async def measure(calls: int, slice_: int, workdir: Path) -> dict[str, Any]:
    mcp_port, gw_port = free_port(), free_port()
    server = start([sys.executable, str(SERVER), "bench", "--http", str(mcp_port)], "mcp", cpus=None)
    config = {
        "server": {"port": gw_port},
        "providers": {"none": {"type": "openai", "base_url": "http://127.0.0.1:9", "api_key": "unused"}},
        "mcp": {"servers": {"web": {"url": f"http://127.0.0.1:{mcp_port}/mcp"}}},
    }
    path = workdir / "gw.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = [sys.executable, "-m", "sidestep", "serve", "--config", str(path)]
    gateway = start(argv, "gw", cpus=None, log=workdir / "gw.log")
    try:
        wait_http(mcp_port, "/mcp", 30, server)
        wait_http(gw_port, "/health", 30, gateway)
        return await _compare(mcp_port, gw_port, calls, slice_, (gateway, server))
    finally:
        gateway.stop()
        server.stop()


async def _compare(mcp_port: int, gw_port: int, calls: int, slice_: int, procs: tuple[Proc, Proc]) -> dict[str, Any]:
    """`procs`: the gateway and the MCP server, whose CPU time each path costs is read from /proc."""
    async with AsyncExitStack() as stack:
        direct = await _session(stack, f"http://127.0.0.1:{mcp_port}/mcp")
        proxied = await _session(stack, f"http://127.0.0.1:{gw_port}/mcp")
        plain = await stack.enter_async_context(httpx2.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}"))
        for _ in range(100):  # the gateway's upstream session may still be connecting
            if (await proxied.list_tools()).tools:
                break
            await asyncio.sleep(0.1)
        body = {"name": "web__add", "arguments": {"a": 1, "b": 2}}

        async def json_call() -> None:
            answer = await plain.post("/v1/mcp/tools/call", json=body)
            answer.raise_for_status()

        paths: dict[str, Call] = {
            "direct": lambda: direct.call_tool("add", {"a": 1, "b": 2}),
            "proxied": lambda: proxied.call_tool("web__add", {"a": 1, "b": 2}),
            "proxied_json": json_call,
        }
        samples: dict[str, list[float]] = {name: [] for name in paths}
        cpu = {name: [0.0, 0.0] for name in paths}  # the gateway's and the server's CPU seconds on each path
        for call in paths.values():
            await _timed(call, WARMUP, [])
        for _ in range(max(calls // slice_, 1)):
            for name, call in paths.items():
                before = [proc.cpu() for proc in procs]
                await _timed(call, slice_, samples[name])
                for i, proc in enumerate(procs):
                    cpu[name][i] += proc.cpu() - before[i]
    result: dict[str, Any] = {name: _summary(values) for name, values in samples.items()}
    for name, (gateway, server) in cpu.items():  # CPU time is steadier than wall time on a busy machine
        result[name]["gateway_cpu_ms_per_call"] = round(gateway * 1000 / len(samples[name]), 3)
        result[name]["server_cpu_ms_per_call"] = round(server * 1000 / len(samples[name]), 3)
    result["added_median_ms"] = round(result["proxied"]["median"] - result["direct"]["median"], 3)
    result["added_json_median_ms"] = round(result["proxied_json"]["median"] - result["direct"]["median"], 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600, help="timed calls per path")
    parser.add_argument("--slice", type=int, default=50, help="calls per path before switching to the next")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(args.calls, args.slice, Path(tmp)))
    for name in ("direct", "proxied", "proxied_json"):
        s = result[name]
        print(
            f"{name:13s} median {s['median']:7.3f} ms  p90 {s['p90']:7.3f} ms  mean {s['mean']:7.3f} ms  n={s['n']}"
            f"  CPU/call: gateway {s['gateway_cpu_ms_per_call']:.3f} ms, server {s['server_cpu_ms_per_call']:.3f} ms"
        )
    print(
        f"added by the gateway (median): {result['added_median_ms']:+.3f} ms over /mcp, "
        f"{result['added_json_median_ms']:+.3f} ms over /v1/mcp/tools/call"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
