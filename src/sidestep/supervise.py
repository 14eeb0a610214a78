"""`--workers N`: the parent process forks the workers, forwards signals to them and replaces any that dies.

A worker that ends without being asked to (killed, crashed) is logged with its pid and exit status or
signal, and a new one is forked after a backoff (0.1 s, doubling up to 5 s). When workers die more than
`RestartPolicy.limit` times within `window` seconds, something is wrong that a restart will not fix: the
parent stops the others and exits 1. A worker that refuses to start (exit 2: a config error, a port in
use) is not restarted either — the parent exits 2 at once.

SIGTERM and SIGINT are forwarded as SIGTERM and end the supervision; SIGHUP is forwarded as it is (each
worker re-reads the config). The parent exits 0 when every worker shut down cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["EXIT_REFUSED", "RestartBudget", "RestartPolicy", "describe_exit", "supervise"]

log = logging.getLogger("sidestep")

EXIT_REFUSED = 2  # a worker that cannot start (config, port): restarting it would fail the same way
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    limit: int = 5  # restarts allowed within `window` seconds
    window: float = 60.0
    first_delay: float = 0.1
    max_delay: float = 5.0


class RestartBudget:
    """Decides, for each unexpected death, how long to wait before the restart — or to give up."""

    def __init__(self, policy: RestartPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._deaths: deque[float] = deque(maxlen=policy.limit + 1)

    def next_delay(self) -> float | None:
        """The backoff before the next restart, or None when too many deaths fell within the window."""
        now = self._clock()
        policy = self._policy
        while self._deaths and self._deaths[0] <= now - policy.window:
            self._deaths.popleft()
        self._deaths.append(now)
        recent = len(self._deaths)
        if recent > policy.limit:
            return None
        return min(policy.max_delay, policy.first_delay * (1 << (recent - 1)))


def describe_exit(code: int) -> str:
    """`os.waitstatus_to_exitcode`'s value in words: a negative code is the signal that ended the process."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exited with status {code}"


class _Supervisor:
    def __init__(self, spawn: Callable[[], int], policy: RestartPolicy, clock: Callable[[], float]) -> None:
        self._spawn = spawn
        self._budget = RestartBudget(policy, clock)
        self._clock = clock
        self.children: dict[int, int] = {}  # pid → worker number
        self.stopping = False

    def start(self, workers: int) -> None:
        for number in range(1, workers + 1):
            self._fork(number)
        for signum in _FORWARDED:
            signal.signal(signum, self._forward)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # held back during start-up

    def _fork(self, number: int) -> None:
        # Blocked across the fork: a signal arriving before the child resets its handlers waits for them
        # instead of running the parent's `_forward` in the child.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(_FORWARDED))
        try:
            self.children[self._spawn()] = number
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def _forward(self, signum: int, _frame: object) -> None:
        if signum != signal.SIGHUP:
            self.stopping = True
        self._signal_all(signal.SIGHUP if signum == signal.SIGHUP else signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):  # exited, not yet reaped
                os.kill(pid, signum)

    def run(self) -> int:
        status = 0
        while self.children:
            pid, raw = os.wait()
            number = self.children.pop(pid, None)
            if number is None:
                continue
            code = os.waitstatus_to_exitcode(raw)
            if self.stopping:  # asked to end: SIGTERM before its handler was set counts as a clean end
                status = status or (0 if code in (0, -signal.SIGTERM) else code if code > 0 else 1)
                continue
            status = self._replace(number, pid, code) or status
        return status

    def _replace(self, number: int, pid: int, code: int) -> int:
        """A worker ended on its own: restart it after a backoff, or give up (the exit status)."""
        log.error("worker %d (pid %d) %s", number, pid, describe_exit(code))
        if code == EXIT_REFUSED:
            return self._give_up(EXIT_REFUSED, "a worker could not start")
        delay = self._budget.next_delay()
        if delay is None:
            return self._give_up(1, "workers keep dying")
        self._wait(delay)
        if not self.stopping:
            self._fork(number)
            log.warning("worker %d restarted after %.1f s (pid %d)", number, delay, _pid_of(self.children, number))
        return 0

    def _give_up(self, status: int, why: str) -> int:
        log.error("%s: stopping the other workers and exiting with status %d", why, status)
        self.stopping = True
        self._signal_all(signal.SIGTERM)
        return status

    def _wait(self, delay: float) -> None:
        deadline = self._clock() + delay
        while not self.stopping and (left := deadline - self._clock()) > 0:
            time.sleep(min(left, 0.05))  # a stop signal cuts the backoff short


def _pid_of(children: dict[int, int], number: int) -> int:
    return next(pid for pid, n in children.items() if n == number)


def supervise(
    spawn: Callable[[], int],
    workers: int,
    policy: RestartPolicy | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Fork `workers` processes with `spawn` (which returns the child's pid; the child never returns)
    and supervise them until they have all ended. The parent's exit status."""
    supervisor = _Supervisor(spawn, policy or RestartPolicy(), clock)
    supervisor.start(workers)
    status = supervisor.run()
    sys.stdout.flush()
    return status


def reset_child_signals() -> None:
    """In a freshly forked worker: the parent's handlers are not the worker's. SIGHUP stays held back
    until the worker's loop has its own handler; SIGTERM and SIGINT end it until then."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
