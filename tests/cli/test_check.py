"""`sidestep check`: every mistake of a file in one run, "did you mean" for misspelt names, and `--no-env`
for checking a config in CI without its secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidestep.cli.main import main
from sidestep.config.load import parse_config
from sidestep.errors import ConfigError, ConfigErrors

MISTAKES = """\
server: {port: eighty, workers: 0, metrcs: true}
provders: {}
providers:
  openai: {api_key: sk-o}
  groq: {type: grok, api_key: sk-g}
  anth: {type: anthropic, api_key: sk-a, base_ur: "http://127.0.0.1:9"}
routes:
  smart: [opneai/gpt-4o, groq/llama, anth/claude]
  lb: {loadbalance: [openai/a, anth/b], strategy: leastlatency}
governance:
  teams:
    research: {rpm: 10}
  keys:
    alice: {key: sk-alice, team: reserch}
    bob: {key: sk-bob, team: research, budget_perod: daily}
"""


def _check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    path = tmp_path / "gw.yaml"
    path.write_text(text)
    status = main(["check", *flags, str(path)])
    out, err = capsys.readouterr()
    return status, out, err.replace(f"{path}: ", "")


def test_check_reports_every_mistake_in_one_run_with_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _check(tmp_path, MISTAKES, capsys)
    assert status == 2 and out == ""
    lines = err.splitlines()
    expected = [
        "provders: unknown key — did you mean 'providers'?",
        "server.metrcs: unknown key — did you mean 'metrics'?",
        "server.port: expected an integer between 0 and 65535, got str 'eighty'",
        "server.workers: expected an integer between 1 and 256, got int 0",
        "providers.groq.type: unknown provider type 'grok' — did you mean 'groq'?",
        "providers.anth.base_ur: unknown key — did you mean 'base_url'?",
        "routes.smart[0]: unknown provider 'opneai' — did you mean 'openai'?",
        "routes.lb.strategy: unknown strategy str 'leastlatency' — did you mean 'lowest_latency'?",
        "governance.keys.alice.team: unknown team 'reserch' — did you mean 'research'?",
        "governance.keys.bob.budget_perod: unknown key — did you mean 'budget_period'?",
    ]
    for text in expected:
        assert sum(line.startswith(f"sidestep: config error: {text}") for line in lines) == 1, (text, err)
    assert lines[-1].endswith(f"sidestep: {len(expected)} errors in {tmp_path / 'gw.yaml'}")
    assert len(lines) == len(expected) + 1  # nothing reported twice, nothing that follows from another mistake
    assert "routes.smart[1]" not in err  # groq is broken (its type), so a route naming it is not "unknown" too


def test_parse_config_raises_one_error_as_itself_and_several_together() -> None:
    with pytest.raises(ConfigError) as one:
        parse_config({"server": {"port": "x"}})
    assert not isinstance(one.value, ConfigErrors)
    with pytest.raises(ConfigErrors) as several:
        parse_config({"server": {"port": "x", "workers": 0}, "routes": {"r": ["nope/m"]}})
    assert [error.path for error in several.value.errors] == ["server.port", "server.workers", "routes.r[0]"]
    assert several.value.path == "server.port"  # it reads as the first
    assert str(several.value).count("\n") == 2


SECRETS = """\
providers:
  openai: {api_key: env:SIDESTEP_TEST_UNSET_OPENAI}
  anthropic: {}
routes:
  chat: [openai/gpt-4o, anthropic/claude]
governance:
  keys:
    alice: {key: env:SIDESTEP_TEST_UNSET_ALICE}
    bob: {key: env:SIDESTEP_TEST_UNSET_BOB}
"""


def test_no_env_checks_a_config_without_its_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SIDESTEP_TEST_UNSET_OPENAI", "SIDESTEP_TEST_UNSET_ALICE", "SIDESTEP_TEST_UNSET_BOB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    status, _out, err = _check(tmp_path, SECRETS, capsys)
    assert status == 2 and "sidestep: 4 errors" in err and "is not set" in err
    status, out, err = _check(tmp_path, SECRETS, capsys, "--no-env")
    assert status == 0, err
    assert "ok — 2 provider(s)" in out
    warnings = err.splitlines()
    assert len(warnings) == 4 and all(line.startswith("sidestep: warning: ") for line in warnings)
    assert "providers.openai.api_key: environment variable SIDESTEP_TEST_UNSET_OPENAI is not set" in err
    assert "providers.anthropic: no API key: ANTHROPIC_API_KEY is not set" in err
    # Two unset variables are two different keys (not "the same key value"); mistakes still count as errors.
    status, _out, err = _check(tmp_path, SECRETS.replace("gpt-4o", "gpt-4o, gorq/x"), capsys, "--no-env")
    assert status == 2 and "routes.chat[1]: unknown provider 'gorq' (known: anthropic, openai)" in err
    assert "the same key value" not in err
