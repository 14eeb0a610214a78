"""The command line: `check` reports config errors precisely; `demo` runs end to end on uvloop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sidestep.cli.main import main

EXAMPLE = Path(__file__).parents[2] / "examples" / "sidestep.yaml"
EXAMPLE_ENV = {
    "OPENAI_API_KEY": "sk-1",
    "OPENAI_API_KEY_2": "sk-2",
    "GROQ_API_KEY": "g",
    "TOGETHER_API_KEY": "t",
    "AZURE_OPENAI_API_KEY": "a",
    "SIDESTEP_KEY_ALICE": "sk-alice",
}


def test_check_accepts_the_example_config(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "ok" in out
    assert "smart" in out
    assert "1 virtual key(s): alice" in out


def test_check_names_file_key_and_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  openai: {api_key: sk-x}\nroutes:\n  r: [openai/gpt-4o, gorq/llama]\n")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: routes.r[1]: unknown provider 'gorq' (known: openai)" in err
    assert "sk-x" not in err


def test_serve_refuses_a_bad_config_before_starting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {port: 'eighty'}\n")
    assert main(["serve", "--config", str(bad)]) == 2
    assert "server.port: expected an integer" in capsys.readouterr().err


def test_demo_runs_offline_and_everything_succeeds() -> None:
    """In a subprocess: the real CLI on uvloop, simulators and gateway on loopback, no network."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sidestep",
            "--log-level",
            "error",
            "demo",
            "--requests",
            "24",
            "--pace",
            "0.01",
            "--plain",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "success: 100.0%" in result.stdout
    assert "primary OUTAGE" in result.stdout
    assert "backup" in result.stdout


@pytest.mark.parametrize(
    "yaml",
    [
        "governance:\n  keys:\n    alice: sk-alice-SECRET\n",  # a key written as its value alone
        "providers:\n  a: sk-prov-SECRET\n",  # a provider written as its API key alone
        "governance:\n  keys:\n    alice: {key: 6210023}\n",  # YAML reads it as a number
    ],
)
def test_check_never_prints_a_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str], yaml: str) -> None:
    bad = tmp_path / "gw.yaml"
    bad.write_text(yaml)
    assert main(["check", str(bad)]) == 2
    out = capsys.readouterr()
    assert "SECRET" not in out.err + out.out and "6210023" not in out.err and "(not shown: " in out.err
