"""One outcome record per request, handed to every observer once it is over; nothing learns the outcome
from response headers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sidestep.outcome import Exchange
from sidestep.server.types import Response
from sidestep.testing import RunningSim, config_for, running_gateway
from tests.conftest import Sdk

MSG = [{"role": "user", "content": "hi"}]


class Recorder:
    """An observer that keeps what it is told (a tracer would be one like it)."""

    wants_usage = True

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str, int, bool, bool]] = []

    def observe(self, exchange: Exchange) -> None:
        ex = exchange
        self.seen.append((ex.operation, ex.status, ex.provider, len(ex.attempts), ex.streamed, ex.usage is not None))
        assert ex.started <= ex.head <= ex.ended


async def test_every_answered_request_is_observed_once_when_it_is_over(sdk: Sdk, sims: dict[str, RunningSim]) -> None:
    recorder = Recorder()
    config = config_for(sims, {"chat": ["primary/gpt-sim@503", "backup/gpt-sim"]}, server={"metrics": True})
    async with running_gateway(config, observers=[recorder]) as gw, httpx.AsyncClient() as http:
        client = sdk(gw.base_url)
        await client.chat.completions.create(model="chat", messages=MSG)
        stream = await client.chat.completions.create(model="chat", messages=MSG, stream=True)
        _ = [chunk async for chunk in stream]
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="nope", messages=MSG)
        await http.get(f"{gw.url}/health")
        await http.get(f"{gw.url}/nowhere")
        await http.get(f"{gw.url}/metrics")  # the scrape is not traffic
    assert recorder.seen == [
        ("chat", 200, "backup", 2, False, True),
        ("chat", 200, "backup", 2, True, True),
        ("chat", 404, "", 0, False, False),
        ("health", 200, "", 0, False, False),
        ("other", 404, "", 0, False, False),
    ]


class Forger:
    """A plugin that adds response headers named like the gateway's own (a cache replaying a stored
    answer would carry them): what the gateway reports must not be read back from them."""

    name = "forger"
    wants_usage = False

    def pre(self, exchange: Exchange) -> Response | None:
        exchange.headers = [("x-sidestep-provider", "forged"), ("x-sidestep-model", "forged")]
        return None

    def post(self, exchange: Exchange) -> None:
        return None


async def test_logs_and_metrics_report_what_happened_not_what_headers_say(
    sdk: Sdk, sims: dict[str, RunningSim], tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    config = config_for(sims, {"chat": ["primary/gpt-sim"]}, server={"metrics": True, "access_log": str(log)})
    async with running_gateway(config, plugins=[Forger()]) as gw, httpx.AsyncClient() as http:
        await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG)
        page = (await http.get(f"{gw.url}/metrics")).text
    line = json.loads(log.read_text().splitlines()[0])
    assert (line["provider"], line["model"]) == ("primary", "gpt-sim")
    assert 'sidestep_requests_total{endpoint="chat",status="200",provider="primary",model="gpt-sim"} 1' in page
    assert "forged" not in page


async def test_a_translated_stream_is_recorded_with_who_served_it(
    claude: Any, sims: dict[str, RunningSim], tmp_path: Path
) -> None:
    log = tmp_path / "requests.jsonl"
    config = config_for(sims, {"chat": ["primary/gpt-sim@503", "backup/gpt-sim"]}, server={"request_log": str(log)})
    async with running_gateway(config) as gw:
        stream = claude(gw.url).messages.stream(model="chat", max_tokens=20, messages=MSG)
        async with stream as events:
            await events.get_final_message()
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert (record["provider"], record["model"], record["stream"]) == ("backup", "gpt-sim", True)
    assert [attempt["target"] for attempt in record["attempts"]] == ["primary/gpt-sim@503", "backup/gpt-sim"]
