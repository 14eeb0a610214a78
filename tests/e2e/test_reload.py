"""Reloading the config while serving (`SIGHUP`): new routes and keys take effect, counters and spend
carry over, and a config with mistakes is reported while the running one keeps serving."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from sidestep.config.load import parse_config
from sidestep.serve import reload_config
from sidestep.testing import RunningSim, config_for, running_gateway
from tests.sim_helpers import MSG, spent_by

Sims = dict[str, RunningSim]


def sdk(gw: Any, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def keyed(sims: Sims, target: str, keys: dict[str, Any], **governance: Any) -> dict[str, Any]:
    config = config_for(sims, {"chat": [target]})
    config["governance"] = {"keys": keys, **governance}
    return config


async def test_a_reload_switches_routes_and_keys_and_keeps_counters(sims: Sims) -> None:
    before = keyed(sims, "primary/gpt-sim", {"a": {"key": "sk-a", "rpm": 3}})
    after = keyed(sims, "backup/gpt-sim", {"a": {"key": "sk-a", "rpm": 3}, "b": {"key": "sk-b"}})
    async with running_gateway(before) as gw, sdk(gw, "sk-a") as a, sdk(gw, "sk-b") as b:
        for _ in range(2):
            await a.chat.completions.create(model="chat", messages=MSG)
        with pytest.raises(openai.AuthenticationError):
            await b.chat.completions.create(model="chat", messages=MSG)
        assert reload_config(gw.gateway, lambda: parse_config(after, source="after.yaml", env={}))
        third = await a.chat.completions.with_raw_response.create(model="chat", messages=MSG)
        with pytest.raises(openai.RateLimitError):  # the minute's count came along: 4 > 3
            await a.chat.completions.create(model="chat", messages=MSG)
        await b.chat.completions.create(model="chat", messages=MSG)
    assert third.headers["x-sidestep-provider"] == "backup"
    assert len(sims["primary"].sim.received) == 2


async def test_a_broken_config_is_reported_and_the_running_one_kept(
    sims: Sims, caplog: pytest.LogCaptureFixture
) -> None:
    good = keyed(sims, "primary/gpt-sim", {"a": {"key": "sk-a"}})
    broken = keyed(sims, "nowhere/gpt-sim", {"a": {"key": "sk-a"}})
    async with running_gateway(good) as gw:
        reloaded = reload_config(gw.gateway, lambda: parse_config(broken, source="broken.yaml", env={}))
        async with sdk(gw, "sk-a") as a:
            await a.chat.completions.create(model="chat", messages=MSG)
    assert not reloaded
    assert "reload failed, still serving the previous config: broken.yaml: routes.chat[0]" in caplog.text


async def test_spend_carries_over_a_reload_into_the_store(sims: Sims, tmp_path: Path) -> None:
    store = str(tmp_path / "spend.db")
    price = {"gpt-sim": {"input": 1000.0, "output": 2000.0}}
    before = keyed(sims, "primary/gpt-sim", {"a": {"key": "sk-a", "budget_usd": 10}}, store=store, pricing=price)
    after = keyed(sims, "backup/gpt-sim", {"a": {"key": "sk-a", "budget_usd": 10}}, store=store, pricing=price)
    async with running_gateway(before) as gw, sdk(gw, "sk-a") as a:
        await a.chat.completions.create(model="chat", messages=MSG)
        assert gw.gateway.plugin("governance") is not None
        spent = spent_by(gw, "key:a")
        reload_config(gw.gateway, lambda: parse_config(after, source="after.yaml", env={}))
        assert spent_by(gw, "key:a") == pytest.approx(spent)
        await a.chat.completions.create(model="chat", messages=MSG)
        total = spent_by(gw, "key:a")
    async with running_gateway(after) as gw:  # restarted: the store has both requests, counted once
        assert gw.gateway.plugin("governance") is not None
        assert spent_by(gw, "key:a") == pytest.approx(total) and total > spent > 0


@pytest.mark.parametrize("workers", [1, 2])
async def test_sighup_reloads_a_running_server(sims: Sims, tmp_path: Path, workers: int) -> None:
    """The real CLI in a subprocess: edit the file, send SIGHUP, the new route answers (from every worker:
    the main process passes the signal on)."""
    port = _free_port()
    path = tmp_path / "sidestep.yaml"
    config = config_for(sims, {"one": ["primary/gpt-sim"]}, server={"port": port, "workers": workers})
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "serve.log"
    proc = _serve(path, log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/v1", timeout=5) as http:
            await _until(lambda: http.get("/models"), lambda r: r.status_code == 200)
            config["routes"] = {"two": ["backup/gpt-sim"]}
            path.write_text(yaml.safe_dump(config))
            os.kill(proc.pid, signal.SIGHUP)
            body = {"model": "two", "messages": MSG}
            answer = await _until(lambda: http.post("/chat/completions", json=body), lambda r: r.status_code == 200)
            # Each request opens a new connection, so the kernel spreads them over the workers.
            fresh = await _until(lambda: _fresh(port, body, 8), lambda codes: codes == [200] * 8)
            path.write_text("routes: [not, a, mapping]\n")
            os.kill(proc.pid, signal.SIGHUP)
            await _until(lambda: asyncio.sleep(0.05, log.read_text()), lambda text: "reload failed" in text)
            still = await http.post("/chat/completions", json=body)
    finally:
        proc.terminate()
        proc.wait(10)
    assert answer.headers["x-sidestep-provider"] == "backup" and still.status_code == 200
    assert fresh == [200] * 8
    assert f"reloaded {path}" in log.read_text()


async def _until(action: Any, done: Any, tries: int = 100) -> Any:
    for _ in range(tries):
        try:
            result = await action()
        except httpx.TransportError:
            result = None
        if result is not None and done(result):
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {result!r}")


async def _fresh(port: int, body: dict[str, Any], count: int) -> list[int]:
    codes = []
    for _ in range(count):
        async with httpx.AsyncClient(timeout=5) as http:
            codes.append((await http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)).status_code)
    return codes


def _serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        argv = [sys.executable, "-m", "sidestep", "serve", "--config", str(config)]
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_reload_forgets_the_breakers_of_removed_providers(sims: Sims) -> None:
    before = config_for(sims, {"chat": ["primary/gpt-sim@503", "backup/gpt-sim"]})
    after = config_for({"backup": sims["backup"]}, {"chat": ["backup/gpt-sim"]})
    async with running_gateway(before) as gw, sdk(gw, "any") as client:
        await client.chat.completions.create(model="chat", messages=MSG)
        providers = {provider for provider, _, _ in gw.gateway.state.breakers.states()}
        assert reload_config(gw.gateway, lambda: parse_config(after, source="after.yaml", env={}))
        left = {provider for provider, _, _ in gw.gateway.state.breakers.states()}
    assert providers == {"primary", "backup"} and left == {"backup"}


async def test_without_a_config_file_sighup_is_ignored(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    proc = _serve_env(port, log)
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            await _until(lambda: http.get(f"http://127.0.0.1:{port}/health"), lambda r: r.status_code == 200)
            os.kill(proc.pid, signal.SIGHUP)
            await _until(lambda: asyncio.sleep(0.05, log.read_text()), lambda text: "SIGHUP ignored" in text)
            alive = await http.get(f"http://127.0.0.1:{port}/health")
    finally:
        proc.terminate()
        proc.wait(10)
    assert alive.status_code == 200


def _serve_env(port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}  # providers from the environment; nothing is called
    with open(log, "wb") as out:
        argv = [sys.executable, "-m", "sidestep", "serve", "--port", str(port)]
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


async def test_sighup_while_workers_start_is_held_not_fatal(sims: Sims, tmp_path: Path) -> None:
    """Reload signals from the moment the workers exist: none dies of SIGHUP's default action before its
    handler is in place, the parent does not fail forwarding, and both workers come up and serve."""
    port = _free_port()
    config = config_for(sims, {"one": ["primary/gpt-sim"]}, server={"port": port, "workers": 2})
    path = tmp_path / "sidestep.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "serve.log"
    proc = _serve(path, log)
    try:
        await _until(lambda: asyncio.sleep(0.002, _children(proc.pid)), lambda pids: len(pids) == 2, tries=1000)
        for _ in range(40):  # through the workers' start-up (each forwarded by the parent)
            os.kill(proc.pid, signal.SIGHUP)
            await asyncio.sleep(0.005)
        await _until(lambda: asyncio.sleep(0.05, log.read_text()), lambda text: text.count("listening") == 2)
        body = {"model": "one", "messages": MSG}
        codes = await _until(lambda: _fresh(port, body, 4), lambda c: c == [200] * 4)
        assert proc.poll() is None and len(_children(proc.pid)) == 2, log.read_text()
    finally:
        proc.terminate()
        proc.wait(10)
    assert codes == [200] * 4
    assert "Traceback" not in log.read_text()


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
