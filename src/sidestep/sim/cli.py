"""`sidestep sim`: run a simulated provider on a port."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from sidestep.loop import run_async
from sidestep.sim.app import Simulator, start_simulator
from sidestep.sim.faults import Scenario, parse_fault

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    formats = "OpenAI, Anthropic, Gemini/Vertex, Bedrock, Cohere"
    parser = sub.add_parser("sim", help=f"run a simulated provider ({formats}) with faults")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--name", default="sim", help='name used in answers ("Echo from NAME")')
    parser.add_argument("--scenario", help="YAML scenario file (rules with start/end/fault/models/every)")
    parser.add_argument("--fault", help="a fault for every request, e.g. status=503,retry_after=2")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    try:
        scenario = Scenario.from_file(args.scenario) if args.scenario else None
        fault = parse_fault(args.fault) if args.fault else None
    except (OSError, ValueError) as exc:
        print(f"sidestep sim: {exc}")
        return 2
    sim = Simulator(name=args.name, scenario=scenario, seed=args.seed)
    sim.set_fault(fault)
    return run_async(run(sim, args.host, args.port))


async def run(sim: Simulator, host: str, port: int) -> int:
    try:
        server = await start_simulator(sim, host, port)
    except OSError as exc:  # the port is taken, …: one line, not a traceback
        reason = os.strerror(exc.errno).lower() if exc.errno is not None else str(exc)
        print(f"sidestep sim: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        return 2
    print(f"sidestep sim '{sim.name}' listening on http://{host}:{server.port}/v1", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()
    return 0
