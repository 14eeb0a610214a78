"""`sidestep demo` as a person and a CI job see it: the gateway's log in its own file (never under the
live screen), the summary once, a pace a person can follow and `--fast` for CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sidestep.demo import pace_for


@pytest.mark.parametrize("view", ["live", "plain"])
def test_demo_logs_to_its_own_file_and_prints_its_summary_once(view: str, tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    argv = [sys.executable, "-m", "sidestep", "demo", "--fast", "--requests", "30", "--log", str(log)]
    if view == "plain":
        argv.append("--plain")
    # The default log level (info): every failover is logged, and none of it may reach the terminal.
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert result.stdout.count("sidestep demo") == 1 and result.stdout.count("requests: 30 ") == 1
    assert result.stdout.rstrip().endswith(f"gateway log: {log}")
    text = log.read_text()
    assert "event=attempt_failed" in text and "primary returned HTTP 503" in text


def test_the_demo_runs_at_a_pace_a_person_can_follow_unless_fast() -> None:
    rounds = 120 / 3  # the default requests over the default clients
    assert 20 <= rounds * pace_for(fast=False, pace=None) <= 30
    assert rounds * pace_for(fast=True, pace=None) <= 1
    assert pace_for(fast=True, pace=0.2) == 0.2  # an explicit --pace wins
