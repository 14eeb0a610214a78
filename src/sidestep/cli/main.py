"""`sidestep` command line: serve, check, sim, demo, drill, mcp, cache."""

from __future__ import annotations

# Light imports only: until `main` runs, a SIGHUP (a reload sent to a starting `serve`) still has its
# default action, ending the process; the rest is imported where it is used.
import argparse
import signal
import sys
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from sidestep import __version__
from sidestep.errors import ConfigError

if TYPE_CHECKING:
    from sidestep.config.model import Config

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    # Held back until the command is known: `serve` keeps it blocked until its handler is in place,
    # any other command lets a pending one act as it always would.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    import logging

    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "serve":
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sidestep", description="LLM failover routing gateway")
    parser.add_argument("--version", action="version", version=f"sidestep {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", "-c", help="YAML config file (default: providers from environment variables)")
    serve.add_argument("--host", help="bind address (overrides server.host)")
    serve.add_argument("--port", type=int, help="port (overrides server.port)")
    serve.add_argument("--workers", type=int, help="worker processes sharing the port (overrides server.workers)")
    serve.add_argument(
        "--reset-broken-store",
        action="store_true",
        help="move an empty or corrupt governance.store aside (FILE.broken-TIME) and start a new one",
    )
    serve.set_defaults(func=_cmd_serve)

    check = sub.add_parser("check", help="validate a config file and exit")
    check.add_argument("config", help="YAML config file")
    check.add_argument(
        "--no-env", action="store_true", help="unset env: secrets are warnings, not errors (CI without the secrets)"
    )
    check.set_defaults(func=_cmd_check)

    from sidestep.cli.cache import add_parser as add_cache
    from sidestep.cli.mcp import add_parser as add_mcp
    from sidestep.demo import add_parser as add_demo
    from sidestep.drill.cli import add_parser as add_drill
    from sidestep.sim.cli import add_parser as add_sim

    add_sim(sub)
    add_demo(sub)
    add_drill(sub)
    add_mcp(sub)
    add_cache(sub)
    return parser


def _load(path: str | None) -> Config:
    from sidestep.config.load import config_from_env, load_config

    return load_config(path) if path else config_from_env()


def _cmd_serve(args: argparse.Namespace) -> int:
    from sidestep.config.load import load_config
    from sidestep.serve import run

    try:
        config = _load(args.config)
    except ConfigError as exc:
        _report(exc, [])
        return 2
    if not config.providers:
        print("sidestep: no providers: pass --config FILE or export a key such as OPENAI_API_KEY", file=sys.stderr)
        return 2
    if config.governance.store is not None and not _store_usable(config.governance.store, args.reset_broken_store):
        return 2
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    load = partial(load_config, args.config) if args.config else None  # SIGHUP re-reads the file
    return run(config, host=host, port=port, workers=args.workers or config.server.workers, load=load)


def _store_usable(path: str, reset: bool) -> bool:
    """Checked once, before any worker starts: an empty or corrupt spend store is refused in one line
    (it would reset every budget), or moved aside when the operator asked for that."""
    from sidestep.plugins.governance.store import inspect_store, set_aside

    problem = inspect_store(path)
    if problem is None:
        return True
    if not reset:
        print(
            f"sidestep: cannot use the spend store '{path}': {problem}; restore it, or start with "
            "--reset-broken-store to move it aside and begin a new one",
            file=sys.stderr,
        )
        return False
    aside = set_aside(path, time.time())
    print(f"sidestep: moved the broken spend store '{path}' to '{aside}'; budgets start from zero", file=sys.stderr)
    return True


def _cmd_check(args: argparse.Namespace) -> int:
    from sidestep.config.load import load_config

    warnings: list[str] = []
    try:
        config = load_config(args.config, no_env=args.no_env, warnings=warnings)
    except ConfigError as exc:
        _report(exc, warnings)
        return 2
    _report(None, warnings)
    keys = config.governance.keys
    governed = f"; {len(keys)} virtual key(s): {', '.join(key.name for key in keys)}" if keys else ""
    print(
        f"{args.config}: ok — {len(config.providers)} provider(s): {', '.join(config.providers) or 'none'}; "
        f"{len(config.routes)} route(s): {', '.join(config.routes) or 'none'}{governed}"
    )
    return 0


def _report(error: ConfigError | None, warnings: list[str]) -> None:
    """Every mistake and warning, one line each, on stderr."""
    for warning in warnings:
        print(f"sidestep: warning: {warning}", file=sys.stderr)
    if error is None:
        return
    errors = getattr(error, "errors", (error,))
    for each in errors:
        print(f"sidestep: config error: {each}", file=sys.stderr)
    if len(errors) > 1:
        print(f"sidestep: {len(errors)} errors in {error.source}", file=sys.stderr)
