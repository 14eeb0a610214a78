"""Governance's pure parts and the plugin contract: sliding windows, budget periods, decisions, the
pipeline's hook order, and the stream usage tap — with a fake clock, no server."""

from __future__ import annotations

import calendar
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidestep.config.model import GovernanceConfig, Limits, Price, Secret, VirtualKey
from sidestep.errors import BadRequest
from sidestep.formats.anthropic_messages import ANTHROPIC_MESSAGES
from sidestep.formats.base import ClientFormat
from sidestep.formats.bedrock_converse import BEDROCK_CONVERSE
from sidestep.formats.body import decode_body
from sidestep.formats.gemini import GEMINI
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.openai_completions import OPENAI_COMPLETIONS
from sidestep.formats.openai_responses import OPENAI_RESPONSES
from sidestep.plugins.base import Exchange, Pipeline
from sidestep.plugins.governance import Governance
from sidestep.plugins.governance.decide import ALLOW, decide
from sidestep.plugins.governance.limits import NO_SCOPES, MinuteWindow, Scope, Scopes, period_end, period_start
from sidestep.server.types import Request, Response
from sidestep.usage_tap import UsageTap

T0 = calendar.timegm((2026, 11, 25, 10, 0, 0))  # a Wednesday, on a minute boundary


def at(year: int, month: int, day: int, hour: int = 0) -> float:
    return float(calendar.timegm((year, month, day, hour, 0, 0)))


# -- the sliding minute ---------------------------------------------------------------------------------


def test_minute_window_slides_the_previous_minute_out() -> None:
    window = MinuteWindow()
    window.add(T0 + 10, 60)
    assert window.estimate(T0 + 30) == 60
    assert window.estimate(T0 + 60) == 60  # next minute: all of the previous still overlaps
    assert window.estimate(T0 + 90) == pytest.approx(30)  # half of it
    assert window.estimate(T0 + 120) == 0  # two minutes on: gone
    window.add(T0 + 90, 5)
    assert window.estimate(T0 + 90) == pytest.approx(35)


def test_minute_window_wait_is_when_the_estimate_falls_below_the_limit() -> None:
    window = MinuteWindow()
    window.add(T0, 10)
    wait = window.wait(T0 + 15, 5)  # full this minute: 45 s to its end, then half of the next
    assert wait == pytest.approx(45 + 30)
    assert window.estimate(T0 + 15 + wait) == pytest.approx(5)
    later = T0 + 70  # the 10 are now "previous": 10 * (1 - 10/60) = 8.33
    assert window.wait(later, 5) == pytest.approx(60 * (1 - 5 / 10) - 10)
    assert window.wait(later, 9) == 0
    assert window.wait(later, 0) == pytest.approx(50)  # nothing may remain: the whole minute must pass


def test_budget_periods_are_utc_calendar_periods() -> None:
    now = at(2026, 11, 25, 15) + 123
    assert period_start(now, "daily") == at(2026, 11, 25)
    assert period_end(now, "daily") == at(2026, 11, 26)
    assert period_start(now, "weekly") == at(2026, 11, 23)  # Monday
    assert period_end(now, "weekly") == at(2026, 11, 30)
    assert period_start(now, "monthly") == at(2026, 11, 1)
    assert period_end(now, "monthly") == at(2026, 12, 1)
    assert period_end(at(2026, 12, 31, 23), "monthly") == at(2027, 1, 1)
    assert period_start(now, "total") == 0 and period_end(now, "total") is None


# -- decisions --------------------------------------------------------------------------------------


def key(models: tuple[str, ...] | None = None) -> VirtualKey:
    return VirtualKey("alice", Secret("sk-alice"), models=models)


def test_decide_checks_the_key_then_models_then_budgets_then_rates() -> None:
    assert decide(None, False, ["chat"], NO_SCOPES, T0).code == "invalid_api_key"
    assert "not known" in decide(None, True, ["chat"], NO_SCOPES, T0).reason
    limited = key(("gpt-4o*", "smart"))
    assert decide(limited, True, ["gpt-4o-mini", "smart"], NO_SCOPES, T0) is ALLOW
    denied = decide(limited, True, ["smart", "openai/o1"], NO_SCOPES, T0)  # a fallback outside the list counts too
    assert denied.code == "model_not_allowed" and "'openai/o1'" in denied.reason
    scope = Scope("key 'alice'", Limits(rpm=1, budget_usd=1.0, budget_period="daily"))
    scope.requests.add(T0, 1)
    assert decide(key(), True, ["chat"], Scopes.of((scope,)), T0).code == "rate_limit_exceeded"
    scope.spend.add(T0, 1.5)
    spent = decide(key(), True, ["chat"], Scopes.of((scope,)), T0)
    assert spent.code == "insufficient_quota" and spent.retry_after is None  # the budget is named first
    assert "resets at 2026-11-26T00:00:00Z" in spent.reason and "key 'alice'" in spent.reason
    assert decide(key(), True, ["chat"], Scopes.of((scope,)), T0 + 86400 + 120) is ALLOW  # a new day, a new minute


def test_rate_limit_decisions_say_when_to_come_back() -> None:
    scope = Scope("team 'research'", Limits(rpm=2, tpm=100))
    scope.requests.add(T0 + 1, 2)
    decision = decide(key(), True, ["chat"], Scopes.of((scope,)), T0 + 1)
    assert decision.code == "rate_limit_exceeded" and "Team 'research'" in decision.reason
    assert decision.retry_after is not None and 59 <= decision.retry_after <= 120
    scope = Scope("team 'research'", Limits(tpm=100))
    scope.tokens.add(T0, 150)
    tokens = decide(key(), True, ["chat"], Scopes.of((scope,)), T0 + 30)
    assert tokens.code == "tokens_exceeded" and tokens.retry_after is not None and tokens.retry_after > 30


# -- the pipeline ----------------------------------------------------------------------------------


class Recorder:
    wants_usage = False

    def __init__(self, name: str, calls: list[str], *, refuse: bool = False, answer: bool = False) -> None:
        self.name, self.calls, self.refuse, self.answer = name, calls, refuse, answer

    def pre(self, exchange: Exchange) -> Response | None:
        self.calls.append(f"pre {self.name}")
        if self.refuse:
            raise BadRequest(f"{self.name} says no")
        return Response(200, b"cached") if self.answer else None

    def post(self, exchange: Exchange) -> None:
        self.calls.append(f"post {self.name} {exchange.status}")
        if self.name == "buggy":
            raise RuntimeError("a bug in a post hook")


def exchange() -> Exchange:
    request = Request("POST", "/v1/chat/completions", "", {}, b"")
    return Exchange(request, "req_1", "chat", OPENAI_CHAT, ["m"], False, 0, {})


def test_post_hooks_run_in_reverse_for_plugins_whose_pre_ran() -> None:
    calls: list[str] = []
    pipeline = Pipeline([Recorder("log", calls), Recorder("auth", calls, refuse=True), Recorder("cache", calls)])
    with pytest.raises(BadRequest):
        pipeline.pre(exchange())
    assert calls == ["pre log", "pre auth", "post auth 400", "post log 400"]  # cache never ran


def test_a_short_circuit_answers_and_a_failing_post_hook_spares_the_others() -> None:
    calls: list[str] = []
    pipeline = Pipeline([Recorder("log", calls), Recorder("buggy", calls), Recorder("cache", calls, answer=True)])
    ex = exchange()
    answer = pipeline.pre(ex)
    assert answer is not None and answer.body == b"cached"
    assert calls == ["pre log", "pre buggy", "pre cache", "post cache 200", "post buggy 200", "post log 200"]


# -- the usage tap -----------------------------------------------------------------------------------

CHUNK = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
USAGE = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}\n\n'
DONE = b"data: [DONE]\n\n"


def test_tap_reads_openai_usage_and_drops_the_chunk_the_client_did_not_ask_for() -> None:
    stream = CHUNK + CHUNK + USAGE + DONE
    for size in (1, 7, 64, len(stream)):  # however the upstream's reads split it
        tap = UsageTap(OPENAI_CHAT, drop_usage_chunk=True)
        out = b"".join(tap.feed(stream[i : i + size]) for i in range(0, len(stream), size)) + tap.flush()
        assert out == CHUNK + CHUNK + DONE
        assert tap.usage is not None and (tap.usage.input, tap.usage.output) == (7, 3)
    kept = UsageTap(OPENAI_CHAT)
    assert kept.feed(stream) == stream and kept.usage is not None and kept.usage.output == 3


SPACED_NULL = b'data: {"choices": [{"index": 0, "delta": {"content": "x"}}], "usage": null}\n\n'
SPACED_USAGE = b'data: {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 1}}\n\n'
COMMENT = b": keep-alive\n\n"


@given(
    st.lists(st.sampled_from([CHUNK, USAGE, SPACED_NULL, SPACED_USAGE, COMMENT, DONE]), max_size=12), st.integers(1, 80)
)
def test_tap_drops_exactly_the_usage_chunks_wherever_they_fall(events: list[bytes], size: int) -> None:
    stream = b"".join(events)
    tap = UsageTap(OPENAI_CHAT, drop_usage_chunk=True)
    out = b"".join(tap.feed(stream[i : i + size]) for i in range(0, len(stream), size)) + tap.flush()
    assert out == b"".join(e for e in events if e not in (USAGE, SPACED_USAGE))
    usages = [e for e in events if e in (USAGE, SPACED_USAGE)]
    assert (tap.usage is None) == (not usages)
    if usages:  # every usage chunk read (merged: the most of each count)
        assert tap.usage is not None and tap.usage.input == (7 if USAGE in usages else 2)


def test_tap_passes_complete_events_at_once_and_holds_only_a_partial_one() -> None:
    tap = UsageTap(OPENAI_CHAT, drop_usage_chunk=True)
    assert tap.feed(CHUNK + CHUNK[:10]) == CHUNK
    assert tap.feed(CHUNK[10:]) == CHUNK
    assert tap.feed(b"data: [DO") == b""
    assert tap.flush() == b"data: [DO"  # a stream that ended mid-event: passed on as it came
    crlf = UsageTap(OPENAI_CHAT, drop_usage_chunk=True)
    out = crlf.feed(CHUNK.replace(b"\n", b"\r\n") + USAGE.replace(b"\n", b"\r\n"))
    assert b"prompt_tokens" not in out and b'"content":"hi"' in out and crlf.usage is not None


def test_tap_reads_anthropic_usage_from_start_and_delta() -> None:
    usage = b'{"usage":{"input_tokens":25,"output_tokens":1}}'
    start = b'event: message_start\ndata: {"type":"message_start","message":' + usage + b"}\n\n"
    delta = b'event: message_delta\ndata: {"type":"message_delta","delta":{},"usage":{"output_tokens":15}}\n\n'
    tap = UsageTap(ANTHROPIC_MESSAGES, drop_usage_chunk=True)  # never drops: Anthropic clients always get usage
    assert tap.feed(start + delta) == start + delta
    assert tap.usage is not None and (tap.usage.input, tap.usage.output) == (25, 15)


def test_disabled_and_expired_keys_are_refused() -> None:
    off = VirtualKey("old", Secret("sk-old"), enabled=False)
    assert decide(off, True, ["chat"], NO_SCOPES, T0).reason == "Key 'old' is disabled."
    dated = VirtualKey("temp", Secret("sk-temp"), expires=T0 + 60)
    assert decide(dated, True, ["chat"], NO_SCOPES, T0 + 59) is ALLOW
    expired = decide(dated, True, ["chat"], NO_SCOPES, T0 + 60)
    assert expired.code == "invalid_api_key" and expired.reason == "Key 'temp' expired at 2026-11-25T10:01:00Z."


@pytest.mark.parametrize(
    ("written", "expires"),
    [
        ("2026-12-31", "2027-01-01T00:00:00Z"),  # a date: the key works through that day
        ("2026-12-31T12:30:00Z", "2026-12-31T12:30:00Z"),
        ("2026-12-31T13:30:00+01:00", "2026-12-31T12:30:00Z"),
    ],
)
def test_expiry_is_a_date_or_a_zoned_date_time(written: str, expires: str) -> None:
    import yaml

    from sidestep.config.load import parse_config

    raw = yaml.safe_load(f"governance: {{keys: {{k: {{key: sk-k, expires: {written}}}}}}}")
    (key,) = parse_config(raw, env={}).governance.keys
    assert key.expires == calendar.timegm(time.strptime(expires, "%Y-%m-%dT%H:%M:%SZ"))


def test_an_expiry_without_zone_is_a_config_error() -> None:
    from sidestep.config.load import parse_config
    from sidestep.errors import ConfigError

    with pytest.raises(ConfigError, match=r"gw.yaml: governance.keys.k.expires: a date-time needs its zone"):
        parse_config({"governance": {"keys": {"k": {"key": "x", "expires": "2026-12-31T12:00:00"}}}}, source="gw.yaml")


def test_a_plugin_that_breaks_in_pre_fails_the_request_and_the_others_still_account_for_it() -> None:
    calls: list[str] = []

    class Broken(Recorder):
        def pre(self, exchange: Exchange) -> Response | None:
            raise KeyError("a bug")

    pipeline = Pipeline([Recorder("log", calls), Broken("broken", calls), Recorder("cache", calls)])
    ex = exchange()
    with pytest.raises(KeyError):
        pipeline.pre(ex)
    assert calls == ["pre log", "post broken 500", "post log 500"]
    assert ex.error == "plugin broken failed: KeyError('a bug')"


def test_tap_passes_an_unreadable_usage_event_on_untouched() -> None:
    broken = b'data: {"choices":[],"usage":{"prompt_tokens":\n\n'
    tap = UsageTap(OPENAI_CHAT, drop_usage_chunk=True)
    assert tap.feed(CHUNK + broken + DONE) == CHUNK + broken + DONE  # not ours to judge: the relay forwards it
    assert tap.usage is None


# -- reservations -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        (OPENAI_CHAT, b'{"max_completion_tokens":1000}'),
        (OPENAI_CHAT, b'{"max_tokens":1000}'),
        (ANTHROPIC_MESSAGES, b'{"max_tokens":1000}'),
        (OPENAI_RESPONSES, b'{"max_output_tokens":1000}'),
        (OPENAI_COMPLETIONS, b'{"max_tokens":1000}'),
        (GEMINI, b'{"generationConfig":{"maxOutputTokens":1000}}'),
        (BEDROCK_CONVERSE, b'{"inferenceConfig":{"maxTokens":1000}}'),
    ],
    ids=lambda v: v.name if isinstance(v, ClientFormat) else v.decode(),
)
def test_a_reservation_holds_the_output_limit_the_clients_format_declares(fmt: ClientFormat, body: bytes) -> None:
    """$1 per million output tokens, nothing for input: the reservation is the output tokens, in millionths."""
    config = GovernanceConfig(
        keys=(VirtualKey("alice", Secret("sk-alice"), limits=Limits(budget_usd=5.0)),),
        pricing={"m": Price(input=0.0, output=1.0)},
        reserve_output_tokens=7,
    )
    governance = Governance(config)
    for raw, held in ((body, 1000), (body.replace(b"1000", b"true"), 7), (body.replace(b"1000", b"1e9"), 7)):
        request = Request("POST", "/", "", {"authorization": "Bearer sk-alice"}, raw)
        ex = Exchange(request, "req_1", "chat", fmt, ["m"], False, 0, decode_body(raw))
        governance.pre(ex)
        assert ex.reserved_usd == pytest.approx(held / 1e6)
        governance.post(ex)
        assert ex.reserved_usd == 0
