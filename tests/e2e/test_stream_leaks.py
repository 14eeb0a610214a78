"""What a stream leaves behind when it fails or its client leaves: nothing — no upstream connection held
open, no task, no stream objects (their buffers) kept alive. A failed stream retaining buffers let a
gateway's memory grow with every one of them."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from typing import Any

import httpx
import msgspec
import pytest

from sidestep.server.types import Request, StreamingResponse
from sidestep.testing import RunningGateway, RunningSim, config_for, running_gateway

Sims = dict[str, RunningSim]
BODY = {"model": "chat", "messages": [{"role": "user", "content": "Tell me about leaks"}], "stream": True}
KINDS = ("Served", "Forward", "StreamJob", "UpstreamResponse")


def alive() -> Counter[str]:
    gc.collect()
    return Counter(name for obj in gc.get_objects() if (name := type(obj).__name__) in KINDS)


def upstream_in_use(gw: RunningGateway) -> int:
    pools: dict[Any, Any] = gw.gateway._transport._pools  # type: ignore[attr-defined]  # the pooled client's state
    return sum(pool.active for pool in pools.values())


async def settle(gw: RunningGateway, tasks: int = 1_000_000) -> None:
    """Until the gateway has seen the connections close (a moment after the client left), at most 2 s."""
    for _ in range(100):
        if upstream_in_use(gw) == 0 and not alive() and len(asyncio.all_tasks()) <= tasks:
            return
        await asyncio.sleep(0.02)


async def test_streams_failing_mid_way_leave_nothing_behind(sims: Sims) -> None:
    route = {"chat": ["primary/a@drop_after=3"]}  # open or not, the one target gets every stream (last resort)
    async with running_gateway(config_for(sims, route)) as gw:
        tasks = len(asyncio.all_tasks())
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(3):
                answers = await asyncio.gather(
                    *(http.post(f"{gw.base_url}/chat/completions", json=BODY) for _ in range(10))
                )
                assert all("mid-stream" in answer.text for answer in answers)
        await settle(gw, tasks)
        assert upstream_in_use(gw) == 0
        assert alive() == Counter()
        assert len(asyncio.all_tasks()) <= tasks


@pytest.mark.parametrize("mid_stream", ["fail", "continue"])  # forwarded as bytes, or by the relaying generator
async def test_a_client_leaving_a_kept_alive_stream_releases_its_upstream(sims: Sims, mid_stream: str) -> None:
    """Headers went out before the first token (keep-alive comments); the client leaves once the answer
    has started: the upstream stream it was relaying is closed, not left open and buffering."""
    route = {"chat": {"target": "primary/a@ttft=0.3,chunk_delay=0.05,chunks=40", "mid_stream": mid_stream}}
    async with running_gateway(config_for(sims, route, server={"sse_keepalive": 0.05})) as gw:
        async with (
            httpx.AsyncClient(timeout=10) as http,
            http.stream("POST", f"{gw.base_url}/chat/completions", json=BODY) as response,
        ):
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    break  # the answer has started: leave
        await settle(gw)
        assert upstream_in_use(gw) == 0
        assert alive() == Counter()


@pytest.mark.parametrize("mid_stream", ["fail", "continue"])
async def test_a_stream_body_closed_before_its_first_read_releases_its_upstream(sims: Sims, mid_stream: str) -> None:
    """The server closes a streaming body it never started when the client left before the head went out."""
    route = {"chat": {"target": "primary/a", "mid_stream": mid_stream}}
    async with running_gateway(config_for(sims, route)) as gw:
        request = Request("POST", "/v1/chat/completions", "", {}, msgspec.json.encode(BODY))
        response = await gw.gateway.handle(request)
        assert isinstance(response, StreamingResponse)
        assert upstream_in_use(gw) == 1
        await response.body.aclose()  # type: ignore[attr-defined]  # every streaming body the gateway makes has it
        assert upstream_in_use(gw) == 0
