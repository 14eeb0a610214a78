"""`sidestep drill`: scenarios, the healthy-target verdict, and the command's exit codes, over real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidestep.cli.main import main
from sidestep.demo import demo_config
from sidestep.drill.report import healthy_during
from sidestep.drill.runner import drill_config, run_drill
from sidestep.drill.scenarios import BUILTIN, load_scenario, primary_providers, scenario_from_data
from sidestep.sim.faults import Rule, Scenario, parse_fault


def test_builtin_scenarios_scale_with_duration() -> None:
    outage = load_scenario("openai-outage", 10.0)
    rule = outage.faults[0].rule
    assert (rule.start, rule.end) == (2.0, 7.0)
    assert load_scenario("openai-outage", 20.0).faults[0].rule.end == 14.0
    assert set(BUILTIN) == {"openai-outage", "anthropic-429-storm", "slow-ttft", "flapping"}


def test_scenario_file_errors_name_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("faults:\n  - {name: openai, type: openai, fault: status=503}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: faults\[0\]: name exactly one selector"):
        load_scenario(str(path), 5.0)
    with pytest.raises(ValueError, match=r"faults\[0\].fault: bad fault token 'status=99'"):
        scenario_from_data({"faults": [{"name": "x", "fault": "status=99"}]}, "s.yaml")
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        load_scenario("nope", 5.0)


def test_primary_role_selects_first_choices_only() -> None:
    config = drill_config(demo_config({}), "<demo>")
    assert primary_providers(config) == frozenset({"primary"})


def test_healthy_during_checks_the_whole_lifetime() -> None:
    down = Scenario([Rule(parse_fault("status=503"), 2.0, 4.0)])
    slow = Scenario([Rule(parse_fault("ttft=3"), 0.0, None)])
    assert healthy_during(down, 0.0, 1.9)
    assert not healthy_during(down, 1.5, 2.5)
    assert not healthy_during(down, 3.9, 5.0)
    assert healthy_during(down, 4.0, 5.0)
    assert healthy_during(slow, 0.0, 10.0)  # slow is not down


async def test_outage_drill_on_demo_config_loses_nothing() -> None:
    config = drill_config(demo_config({}), "<demo>")
    report = await run_drill(config, load_scenario("openai-outage", 1.5), duration=1.5, rate=30)
    summary = report.routes["demo-chat"]
    assert report.passed and report.total == 45
    assert summary.success_rate == 1.0
    assert summary.served_by["primary"] > 0  # before and after the outage window
    assert summary.served_by["flaky"] + summary.served_by["backup"] > 0  # during it
    assert summary.attempts()[1] >= 2
    assert not report.untouched


async def test_drill_flags_a_failure_while_a_healthy_target_existed() -> None:
    # A 400 is a caller error: the gateway rightly returns it at once — but the backup was healthy, so the
    # drill reports those requests as lost (a misclassified upstream error would look exactly like this).
    config = drill_config(
        {
            "providers": {
                "a": {"type": "openai", "api_key": "env:SIDESTEP_DRILL_UNSET_KEY"},
                "b": {"type": "groq", "api_key": "k"},
            },
            "routes": {"r": ["a/m", "b/m"]},
        },
        "<test>",
    )
    scenario = scenario_from_data({"name": "bad-request", "faults": [{"name": "a", "fault": "status=400"}]}, "t")
    report = await run_drill(config, scenario, duration=0.5, rate=20, stream_share=0.0)
    assert not report.passed
    outcome, healthy = report.lost[0]
    assert healthy == ["b"] and outcome.error is not None and "HTTP 400" in outcome.error


async def test_unknown_route_is_refused() -> None:
    config = drill_config(demo_config({}), "<demo>")
    with pytest.raises(ValueError, match="unknown route"):
        await run_drill(config, load_scenario("flapping", 1.0), routes=["nope"])


def test_drill_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drill", "-s", "flapping", "--duration", "1", "--rate", "20"]) == 0
    out = capsys.readouterr().out
    assert "drill: flapping" in out and "PASS" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("faults:\n  - {role: primary, fault: status=400}\n")
    assert main(["drill", "-s", str(bad), "--duration", "0.5", "--rate", "20"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["drill", "-s", "nope"]) == 2


REAL_CONFIG = """\
server:
  access_log: {dir}/access.log
  request_log: {dir}/request.log
providers:
  openai: {{api_key: env:SIDESTEP_DRILL_TEST_OPENAI}}
  co: {{type: cohere, api_key: env:SIDESTEP_DRILL_TEST_COHERE}}
routes:
  chat: [openai/gpt-4o-mini, co/command-r]
  embed: [openai/text-embedding-3-small, co/embed-v4.0]
governance:
  store: {dir}/spend.db
  pricing:
    gpt-4o-mini: {{input: 0.15, output: 0.6}}
  keys:
    alice: {{key: env:SIDESTEP_DRILL_TEST_ALICE, models: [chat], budget_usd: 5}}
"""


def test_drill_runs_a_real_config_without_touching_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Virtual keys (the drill brings its own), an embeddings-only route (sent embeddings, which the
    simulator refuses to chat about), and the config's logs and spend store, which stay untouched."""
    for name in ("SIDESTEP_DRILL_TEST_OPENAI", "SIDESTEP_DRILL_TEST_COHERE", "SIDESTEP_DRILL_TEST_ALICE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "gw.yaml"
    path.write_text(REAL_CONFIG.format(dir=tmp_path))
    status = main(["drill", "--config", str(path), "-s", "openai-outage", "--duration", "1", "--rate", "20"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "PASS" in out and "100.0%" in out and "HTTP" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gw.yaml"]  # no log, no store of the config's


def test_routes_get_the_operation_they_serve() -> None:
    from sidestep.drill.runner import route_operation

    config = drill_config(
        {
            "providers": {"o": {"type": "openai", "api_key": "k"}},
            "routes": {"chat": ["o/gpt-4o", "o/text-embedding-3-small"], "embed": ["o/text-embedding-3-large"]},
        },
        "<test>",
    )
    assert route_operation(config.routes["chat"]) == "chat"
    assert route_operation(config.routes["embed"]) == "embeddings"
