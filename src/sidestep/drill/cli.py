"""`sidestep drill`: prove a config survives an outage before the outage does."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from rich.console import Console
from rich.table import Table

from sidestep.drill.report import DrillReport
from sidestep.drill.scenarios import BUILTIN, load_scenario
from sidestep.errors import ConfigError
from sidestep.loop import run_async

__all__ = ["add_parser", "render"]


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("drill", help="replay an outage scenario against your config with simulated providers")
    parser.add_argument("--config", "-c", help="YAML config file (default: the demo's config)")
    parser.add_argument(
        "--scenario",
        "-s",
        action="append",
        help=f"a built-in ({', '.join(BUILTIN)}), 'all', or a scenario YAML file; repeatable (default: all)",
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of traffic per scenario (default 8)")
    parser.add_argument("--rate", type=float, default=25.0, help="requests per second, open loop (default 25)")
    parser.add_argument("--stream-share", type=float, default=0.5, help="share of streaming requests (default 0.5)")
    parser.add_argument("--route", action="append", help="drill only this route (repeatable; default: every route)")
    parser.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    return run_async(_main(args))


async def _main(args: argparse.Namespace) -> int:
    from sidestep.demo import demo_config
    from sidestep.drill.runner import drill_config, load_drill_config, run_drill

    console = Console()
    if args.log_level == "info":  # failover chatter would bury the report; --log-level debug brings it back
        logging.getLogger("sidestep").setLevel(logging.ERROR)
    wanted = args.scenario or ["all"]
    names = [n for w in wanted for n in (BUILTIN if w == "all" else [w])]
    try:
        config = load_drill_config(args.config) if args.config else drill_config(demo_config({}), "<demo>")
        scenarios = [load_scenario(name, args.duration) for name in names]
    except (ConfigError, ValueError) as exc:
        console.print(f"sidestep drill: {exc}", markup=False)
        return 2
    failed = False
    for scenario in scenarios:
        try:
            report = await run_drill(
                config,
                scenario,
                duration=args.duration,
                rate=args.rate,
                stream_share=args.stream_share,
                routes=args.route,
            )
        except ValueError as exc:
            console.print(f"sidestep drill: {exc}", markup=False)
            return 2
        render(report, console)
        failed = failed or not report.passed
    return 1 if failed else 0


def render(report: DrillReport, console: Console) -> None:
    scenario = report.scenario
    console.print(f"\n[bold]drill: {scenario.name}[/] — {scenario.description}")
    for fault in scenario.faults:
        console.print(f"  fault  {fault.describe()}", markup=False)
    if report.untouched:
        console.print("  [yellow]no provider of this config matches the scenario: it ran fault-free[/]")
    table = Table(title=f"{report.total} requests over {report.duration:g}s; healthy p50 {report.baseline_ms:.1f} ms")
    for column in ("route", "requests", "success", "attempts avg/max", "added p50/p95/p99 ms", "served by"):
        table.add_column(column)
    for summary in report.routes.values():
        mean, peak = summary.attempts()
        p50, p95, p99 = summary.added_latency(report.baseline_ms)
        shares = ", ".join(f"{name} {count}" for name, count in summary.served_by.most_common()) or "-"
        rate = summary.success_rate * 100
        colour = "green" if rate == 100 else "yellow"
        table.add_row(
            summary.route,
            str(len(summary.outcomes)),
            f"[{colour}]{rate:.1f}%[/]",
            f"{mean:.2f} / {peak}",
            f"{p50:.0f} / {p95:.0f} / {p99:.0f}",
            shares,
        )
    console.print(table)
    for outcome, healthy in report.lost[:20]:
        console.print(
            f"  [red]LOST[/] #{outcome.number} {outcome.route} at {outcome.start:.2f}s: {outcome.error} "
            f"(healthy: {', '.join(healthy)})",
            markup=True,
        )
    verdict = "[green]PASS[/]: no request failed while a healthy target existed"
    if report.lost:
        verdict = f"[red]FAIL[/]: {len(report.lost)} request(s) failed while a healthy target existed"
    console.print(verdict)
