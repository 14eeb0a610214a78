"""The simulator's one fault machinery, playing the same way in every dialect it speaks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from sidestep.server.types import AbortConnection, Request, StreamingResponse
from sidestep.sim import FaultSpec, Scenario, Simulator, parse_fault
from tests.sim_helpers import (
    HELLO,
    claude,
    collect,
    gemini,
    post,
)

# -- one fault machinery, every dialect ---------------------------------------------------------------------

Build = Callable[[str, dict[str, str], bool], Request]


def openai_request(model: str, headers: dict[str, str], stream: bool) -> Request:
    body = {"model": model, "messages": HELLO, "stream": stream}
    return post("/v1/chat/completions", body, {"authorization": "Bearer key", **headers})


def anthropic_request(model: str, headers: dict[str, str], stream: bool) -> Request:
    return claude({"model": model, "stream": stream}, headers)


def gemini_request(model: str, headers: dict[str, str], stream: bool) -> Request:
    request = gemini({}, model, stream=stream)
    request.headers.update(headers)
    return request


DIALECTS = pytest.mark.parametrize(
    "build", [openai_request, anthropic_request, gemini_request], ids=["openai", "anthropic", "gemini"]
)


def frames(build: Build, raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n" if build is gemini_request else b"\n\n")


@DIALECTS
async def test_faults_by_header_suffix_runtime_and_scenario(build: Build) -> None:
    now = [0.0]
    simulator = Simulator(
        api_keys=["key"], clock=lambda: now[0], scenario=Scenario.from_data([{"start": 5, "fault": "status=500"}])
    )
    assert (await simulator.handle(build("m", {"x-sim-fault": "status=503"}, False))).status == 503
    limited = await simulator.handle(build("m@status=429,retry_after=3", {}, False))
    assert (limited.status, dict(limited.headers)["retry-after"]) == (429, "3")
    simulator.set_fault("status=404")
    assert (await simulator.handle(build("m", {}, False))).status == 404
    simulator.set_fault(None)
    assert (await simulator.handle(build("m", {}, False))).status == 200
    now[0] = 6
    assert (await simulator.handle(build("m", {}, False))).status == 500
    with pytest.raises(AbortConnection):
        await simulator.handle(build("m@reset", {}, False))
    assert len(simulator.received) == 6


@DIALECTS
async def test_latency_ttft_and_pacing_land_in_the_same_places(build: Build) -> None:
    log: list[Any] = []

    async def sleep(seconds: float) -> None:
        log.append(seconds)

    simulator = Simulator(api_keys=["key"], sleep=sleep)
    response = await simulator.handle(build("m@latency=0.5,ttft=2,chunk_delay=0.1,chunks=3", {}, True))
    assert log == [0.5]
    assert isinstance(response, StreamingResponse)
    async for piece in response.body:  # interleaved with the sleeps, so no comprehension
        log.append(piece)  # noqa: PERF401
    first = next(i for i, item in enumerate(log) if isinstance(item, bytes) and b"Echo" in item)
    assert log[first - 1] == 2  # ttft is felt right before the first content, after the headers
    assert all(isinstance(item, bytes) for item in log[1 : first - 1])
    assert log[first + 1 :].count(0.1) >= 2


@DIALECTS
async def test_drop_malformed_and_stream_error_in_every_dialect(build: Build) -> None:
    simulator = Simulator(api_keys=["key"])
    dropped = await simulator.handle(build("m@drop_after=2", {}, True))
    assert isinstance(dropped, StreamingResponse)
    got: list[bytes] = []
    with pytest.raises(AbortConnection):  # noqa: PT012
        async for piece in dropped.body:
            got.append(piece)  # noqa: PERF401
    assert len(got) == 2
    healthy = frames(build, await collect(await simulator.handle(build("m", {}, True))))
    broken = frames(build, await collect(await simulator.handle(build("m@malformed", {}, True))))
    where = next(i for i, frame in enumerate(healthy) if b"Echo" in frame)
    assert [i for i, frame in enumerate(broken) if b"{not json" in frame] == [where]  # the first content is broken
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(await collect(await simulator.handle(build("m@malformed", {}, False))))
    ended = await collect(await simulator.handle(build("m@stream_error_after=2,message=busy", {}, True)))
    last = ended.strip().rsplit(b"data: ", 1)[-1]
    error = msgspec.json.decode(last)
    assert "error" in error
    assert "busy" in msgspec.json.encode(error).decode()


async def test_openai_content_filter_and_stream_error() -> None:
    simulator = Simulator()
    blocked = msgspec.json.decode(await collect(await simulator.handle(openai_request("m@blocked", {}, False))))
    assert (blocked["choices"][0]["finish_reason"], blocked["choices"][0]["message"]["content"]) == (
        "content_filter",
        "",
    )
    half = msgspec.json.decode(await collect(await simulator.handle(openai_request("m@blocked_output", {}, False))))
    assert (
        half["choices"][0]["message"]["content"]
        == "Echo from sim: hello simulator. Failover keeps answers flowing when a provider stumbles. Every"
    )
    ended = await collect(await simulator.handle(openai_request("m@stream_error_after=1", {}, True)))
    assert msgspec.json.decode(ended.split(b"data: ")[-1])["error"]["type"] == "server_error"


def test_new_fault_flags_parse_and_are_not_healthy() -> None:
    spec = parse_fault("stream_error_after=3,blocked_output")
    assert spec == FaultSpec(stream_error_after=3, blocked_output=True)
    assert spec.describe() == "stream_error_after=3,blocked_output"
    assert not spec.is_healthy
    assert not parse_fault("blocked").is_healthy
    assert parse_fault("ttft=1").is_healthy
    with pytest.raises(ValueError, match="flags take no value"):
        parse_fault("blocked=1")
