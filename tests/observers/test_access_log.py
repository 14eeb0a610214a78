"""The access log: one JSON line per request, batched off the request path, bounded when the sink stalls."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidestep.batch import thousandths
from sidestep.errors import ConfigError
from sidestep.observers.access_log import AccessLog
from sidestep.outcome import Exchange
from sidestep.server.types import Request
from sidestep.testing import RunningSim, config_for, running_gateway
from tests.conftest import Sdk

MSG = [{"role": "user", "content": "hi"}]


async def test_every_request_gets_a_line_naming_who_served_it(
    sdk: Sdk, sims: dict[str, RunningSim], tmp_path: Path
) -> None:
    path = tmp_path / "access.log"
    config = config_for(sims, {"chat": ["primary/gpt-4o-mini", "backup/gpt-4o-mini"]}, server={"access_log": str(path)})
    sims["primary"].sim.set_fault("status=503")
    async with running_gateway(config) as gw:
        client = sdk(gw.base_url)
        await client.chat.completions.create(model="chat", messages=MSG)
        with pytest.raises(Exception, match="nope"):
            await client.chat.completions.create(model="nope", messages=MSG)
    lines = [json.loads(line) for line in path.read_text().splitlines()]  # flushed at shutdown
    assert [line["status"] for line in lines] == [200, 404]
    served = lines[0]
    assert served["provider"] == "backup" and served["model"] == "gpt-4o-mini" and served["attempts"] == "2"
    assert served["path"] == "/v1/chat/completions" and served["stream"] is False
    assert served["id"].startswith("req_") and served["ms"] > 0 and served["client"] == "127.0.0.1"
    assert "provider" not in lines[1]


async def test_a_stalled_sink_drops_and_counts_instead_of_growing() -> None:
    sink = io.BytesIO()
    log = AccessLog(sink, interval=3600, max_lines=2)
    for i in range(5):
        request = Request("GET", f"/r{i}", "", {}, b"")
        log.observe(Exchange(request, f"/r{i}", "health", "openai", (), False, 0.0, {}, status=200))
    log.close()
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert [line.get("id") for line in lines[:2]] == ["/r0", "/r1"]
    assert lines[2]["event"] == "access_log_dropped" and lines[2]["lines"] == 3


async def test_an_unwritable_access_log_is_a_config_error(sims: dict[str, RunningSim], tmp_path: Path) -> None:
    config = config_for(sims, server={"access_log": str(tmp_path / "missing-dir" / "a.log")})
    with pytest.raises(ConfigError, match=r"server\.access_log: cannot open the access log"):
        async with running_gateway(config):
            pass


@given(st.floats(min_value=0, max_value=4e9))  # durations in ms and Unix times in seconds
def test_log_times_keep_three_decimals_as_round_does(value: float) -> None:
    rounded = thousandths(value)
    assert abs(rounded - value) <= 0.0005 + value * 1e-15
    assert abs(rounded - round(value, 3)) <= 0.001 + value * 1e-15  # at most a tie rounded the other way
    digits = repr(rounded).partition(".")[2]
    assert len(digits) <= 3 or "e" in repr(rounded)  # what the JSON line shows
