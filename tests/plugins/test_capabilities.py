"""`AwaitsClose` and `await_closed`: a lifecycle that says when its close is over is found once, and waited for
within a bound; those still stopping (or failing) are named, never waited for past it."""

from __future__ import annotations

import asyncio

from sidestep.plugins.capabilities import await_closed, discover


class Quick:
    name = "quick"
    wants_usage = False

    def __init__(self) -> None:
        self.ended = asyncio.Event()

    def pre(self, exchange: object) -> None:
        return None

    def post(self, exchange: object) -> None:
        return None

    def start(self) -> None:
        return None

    def close(self) -> None:
        asyncio.get_running_loop().call_later(0.01, self.ended.set)

    async def closed(self) -> None:
        await self.ended.wait()


class Stuck(Quick):
    name = "stuck"

    def close(self) -> None:
        return None  # never ends


class Broken(Quick):
    name = "broken"

    async def closed(self) -> None:
        raise RuntimeError("the child would not die")


class SyncOnly(Quick):
    name = "sync"
    closed = None  # type: ignore[assignment]  # a lifecycle without the async part


async def test_closers_are_found_once_and_waited_for_within_the_bound() -> None:
    quick, stuck, broken, sync = Quick(), Stuck(), Broken(), SyncOnly()
    caps = discover([quick, stuck, broken, sync])  # type: ignore[list-item]
    assert caps.lifecycles == (quick, stuck, broken, sync)
    assert caps.closers == (quick, stuck, broken)
    for item in caps.lifecycles:
        item.close()
    began = asyncio.get_running_loop().time()
    late = await await_closed(caps.closers, 0.2)
    assert sorted(late) == ["broken", "stuck"] and quick.ended.is_set()
    assert asyncio.get_running_loop().time() - began < 1.0


async def test_nothing_to_wait_for_and_a_spent_timeout() -> None:
    assert await await_closed((), 5) == []
    stuck = Stuck()
    assert await await_closed((stuck,), -3) == ["stuck"]  # the drain used it all up: not waited for at all
