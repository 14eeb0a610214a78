"""The event loop every command runs on: uvloop when it is installed, and how a command runs a coroutine.

It sits below everything that starts a loop (the gateway, the simulator, the demo, the drill, the CLI), so
that none of them has to import another to share it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["install_fast_loop", "run_async"]


def install_fast_loop() -> str:
    """Use uvloop when it is installed (about twice asyncio's throughput); say which loop runs."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def run_async(coro: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine on the fast loop; Ctrl-C exits quietly with 130."""
    install_fast_loop()
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        return 130
