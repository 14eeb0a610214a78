"""Run the gateway: build it from a config, bind, serve until a signal, shut down gracefully.

`--workers N` forks N processes that each bind the same port with SO_REUSEPORT; the kernel spreads
connections across them. Each worker has its own pools and in-memory state (nothing is shared yet); the
parent supervises them (`sidestep.supervise`). A gateway that cannot start (config error, port in use)
says so in one line and exits 2.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from sidestep.answers import error_headers
from sidestep.app import Gateway
from sidestep.config.model import Config
from sidestep.endpoints import client_format
from sidestep.errors import ConfigError
from sidestep.loop import install_fast_loop
from sidestep.outcome import Observer
from sidestep.plugins.base import Plugin
from sidestep.plugins.capabilities import await_closed
from sidestep.plugins.registry import build_observers
from sidestep.server.protocol import HttpServer, ServerLimits, start_server
from sidestep.server.types import Response
from sidestep.supervise import EXIT_REFUSED, RestartPolicy, reset_child_signals, supervise
from sidestep.transport.client import HttpClient

__all__ = ["run", "start_gateway"]

log = logging.getLogger("sidestep")


def compiled_build() -> str:
    """ "compiled" when the request path runs as mypyc extensions (`make compile`), else "interpreted". A
    compiled module older than its source is warned about: it, not the edited file, is what runs."""
    app = Path(str(sys.modules[Gateway.__module__].__file__))
    if not app.name.endswith(".so"):
        return "interpreted"
    stale = stale_extensions(app.parent)
    if stale:
        log.warning("compiled modules older than their source run instead of it (make compile): %s", ", ".join(stale))
    return "compiled"


def stale_extensions(package: Path) -> list[str]:
    """The compiled modules under `package` whose source file was changed after they were built."""
    return sorted(
        str(ext.relative_to(package))
        for ext in package.rglob("*.so")
        if (source := ext.with_name(ext.name.split(".")[0] + ".py")).exists()
        and source.stat().st_mtime > ext.stat().st_mtime
    )


async def start_gateway(
    config: Config,
    *,
    host: str | None = None,
    port: int | None = None,
    reuse_port: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    wall_clock: Callable[[], float] = time.time,
    plugins: Sequence[Plugin] = (),
    observers: Sequence[Observer] = (),
    rng: random.Random | None = None,
) -> tuple[HttpServer, Gateway, HttpClient]:
    """Start a gateway on the running loop. The caller closes the server, then the client.
    `clock` and `sleep` drive breakers, cooldowns, backoff and deadlines; `wall_clock` rate limits,
    budget periods and log times (tests pass fakes), `rng` the weighted draws. `plugins` and `observers`
    come before the ones the config turns on (`sidestep.plugins.registry`)."""
    client = HttpClient()
    gateway = Gateway(
        config,
        client,
        clock=clock,
        sleep=sleep,
        plugins=plugins,
        observers=observers,
        wall_clock=wall_clock,
        rng=rng,
    )
    gateway.attach(build_observers(config, gateway))
    limits = ServerLimits(max_body_bytes=config.server.max_body_bytes, shutdown_timeout=config.server.drain_timeout)
    try:
        server = await start_server(
            gateway.handle,
            host or config.server.host,
            config.server.port if port is None else port,
            limits=limits,
            error_renderer=render_server_error,
            reuse_port=reuse_port,
        )
    except BaseException:
        gateway.close()
        raise
    gateway.start()
    server.on_closed.append(gateway.close)  # whichever plugins serve by then
    return server, gateway, client


# On a stop signal an idle keep-alive connection gets this long to send one more request (answered with
# `Connection: close`): closing it at once resets a request its client may be sending at that moment.
_IDLE_GRACE = 1.0
# Read only when serving starts: a reload that changes them says so and leaves them as they were.
_RESTART_ONLY = (
    "host",
    "port",
    "workers",
    "max_body_bytes",
    "access_log",
    "request_log",
    "metrics",
    "metrics_key",
    "drain_timeout",
)


def reload_config(gateway: Gateway, load: Callable[[], Config]) -> bool:
    """Re-read the config (`SIGHUP`) and serve it from now on; a config with mistakes is reported and the
    running one kept. True when the new config took effect."""
    try:
        config = load()
        gateway.reconfigure(config)
    except ConfigError as exc:
        log.error("reload failed, still serving the previous config: %s", exc)
        return False
    kept = [name for name in _RESTART_ONLY if getattr(config.server, name) != getattr(gateway.config.server, name)]
    if kept:
        log.warning("reloaded %s; server.%s take effect at the next restart", config.source, ", server.".join(kept))
    else:
        log.info("reloaded %s", config.source)
    return True


def render_server_error(status: int, message: str, path: str) -> Response:
    """Errors the HTTP layer raises itself (413, 431, malformed HTTP …), in the format of the path's endpoint."""
    client = client_format(path)
    headers = [("content-type", "application/json"), *error_headers(client, status)]
    return Response(status, client.server_error_body(status, message), headers)


async def _serve(
    config: Config,
    host: str,
    port: int,
    reuse_port: bool,
    on_ready: Callable[[int], None],
    load: Callable[[], Config] | None,
) -> int:
    try:
        server, gateway, client = await start_gateway(config, host=host, port=port, reuse_port=reuse_port)
    except ConfigError as exc:
        return _refuse(f"config error: {exc}")
    except OSError as exc:  # the port is taken, the address is not this machine's, …
        return _refuse(f"cannot listen on {host}:{port}: {_os_reason(exc)}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if load is not None:
        loop.add_signal_handler(signal.SIGHUP, reload_config, gateway, load)
    else:  # providers came from the environment, which a running process cannot re-read: keep serving
        loop.add_signal_handler(signal.SIGHUP, log.warning, "SIGHUP ignored: there is no config file to reload")
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # one held back during start-up arrives now
    _tune_gc()
    on_ready(server.port)
    await stop.wait()
    log.info("shutting down: finishing in-flight requests (at most %g s)", config.server.drain_timeout)
    deadline = loop.time() + config.server.drain_timeout
    await server.close(idle_grace=_IDLE_GRACE)  # then the gateway's plugins close (`on_closed`)
    # What the plugins stopped ends within the drain: stdio MCP servers exit, their processes reaped.
    late = await await_closed(gateway.capabilities.closers, deadline - loop.time())
    if late:
        log.warning("shutdown timeout: %s still stopping", ", ".join(late))
    await client.aclose()
    log.info("stopped")
    return 0


def _refuse(message: str) -> int:
    """A gateway that cannot start says why in one line (no traceback) and exits 2."""
    print(f"sidestep: {message}", file=sys.stderr, flush=True)
    return EXIT_REFUSED


def _os_reason(exc: OSError) -> str:
    if exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return str(exc)


def _tune_gc() -> None:
    """Once serving: what start-up built (modules, config, providers) moves out of the collector's sight,
    and the youngest generation is collected every 10,000 allocations instead of 700. A request's objects
    die by reference counting long before that; the default threshold made the collector walk in-flight
    requests' objects thousands of times a second (6-8 % of CPU at saturation, measured with py-spy)."""
    gc.freeze()
    gc.set_threshold(10_000, 20, 50)


def run(
    config: Config,
    *,
    host: str,
    port: int,
    workers: int,
    load: Callable[[], Config] | None = None,
    restarts: RestartPolicy | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM; the exit status. With `load` (re-reads the config file), SIGHUP
    reloads the config. With `workers` > 1 the workers are supervised (`sidestep.supervise`)."""
    loop_name = install_fast_loop()
    build = compiled_build()

    def ready(bound: int) -> None:
        log.info("sidestep listening on http://%s:%d (pid %d, %s, %s)", host, bound, os.getpid(), loop_name, build)

    # SIGHUP's default action ends a process: until a process has its handler (the supervisor's, a
    # worker its loop's), a reload signal is held back, not fatal. `sidestep serve` blocks it earlier
    # still, before reading the config; workers inherit the block.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    if workers <= 1:
        return asyncio.run(_serve(config, host, port, False, ready, load))

    def spawn() -> int:
        pid = os.fork()
        if pid == 0:  # the worker: serve until signalled, never return into the parent's code
            code = 1
            try:
                reset_child_signals()
                code = asyncio.run(_serve(config, host, port, True, ready, load))
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        return pid

    return supervise(spawn, workers, restarts)
