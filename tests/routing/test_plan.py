"""Pure routing decisions: resolution, expansion order, weighted choice."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from sidestep.config.load import parse_config
from sidestep.config.model import LoadBalanceNode, TargetNode
from sidestep.errors import NotFound
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.providers.registry import build_providers
from sidestep.routing.executor import Executor
from sidestep.routing.plan import Planner, expand, reads_stats, resolve, resolve_all
from sidestep.routing.strategies import weighted_order
from sidestep.transport.fake import FakeResponse, FakeTransport

ANSWER = (
    b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}'  # an answer, as executors require
)
CONFIG = parse_config(
    {
        "providers": {
            "openai": {"api_key": "a", "models": ["gpt-4o-mini"]},
            "groq": {"api_key": "b"},
        },
        "routes": {"smart": ["openai/gpt-4o-mini", {"loadbalance": ["groq/x", {"target": "groq/y", "weight": 3}]}]},
    },
    env={},
)


def test_route_expands_in_fallback_order_with_every_target_once() -> None:
    targets = [p.target for p in resolve_all(["smart"], CONFIG.routes, CONFIG.providers, random.Random(1))]
    assert targets[0] == TargetNode("openai", "gpt-4o-mini")
    assert {t.model for t in targets[1:]} == {"x", "y"}
    assert len(targets) == 3


def test_per_request_fallbacks_append_and_deduplicate() -> None:
    names = ["openai/gpt-4o-mini", "smart", "groq/z"]
    targets = [p.target for p in resolve_all(names, CONFIG.routes, CONFIG.providers, random.Random(0))]
    labels = [t.label for t in targets]
    assert labels[0] == "openai/gpt-4o-mini"
    assert labels[-1] == "groq/z"
    assert len(targets) == 4


def test_bare_model_listed_under_one_provider_resolves_to_it() -> None:
    assert resolve("gpt-4o-mini", CONFIG.routes, CONFIG.providers) == TargetNode("openai", "gpt-4o-mini")


def test_unknown_model_lists_routes_and_providers() -> None:
    with pytest.raises(NotFound) as info:
        resolve("claude-3", CONFIG.routes, CONFIG.providers)
    assert "smart" in info.value.message
    assert "groq, openai" in info.value.message
    assert info.value.status == 404


def test_weighted_order_prefers_heavier_items_and_keeps_all() -> None:
    rng = random.Random(42)
    firsts = Counter(weighted_order(["a", "b"], [1.0, 3.0], rng)[0] for _ in range(4000))
    assert 0.70 < firsts["b"] / 4000 < 0.80  # expected 0.75
    assert sorted(weighted_order(["a", "b", "c"], [1, 1, 1], rng)) == ["a", "b", "c"]


def test_loadbalance_expansion_follows_weights() -> None:
    node = LoadBalanceNode((TargetNode("p", "light", 1.0), TargetNode("p", "heavy", 9.0)))
    rng = random.Random(7)
    firsts = Counter(expand(node, rng)[0].target.model for _ in range(2000))
    assert firsts["heavy"] > 1600


async def test_key_choice_respects_weights_allow_lists_and_resting_keys() -> None:
    """The executor's key choice (weighted draw over keys allowed for the model, not resting, not broken)."""
    config = parse_config(
        {
            "providers": {
                "p": {
                    "type": "openai",
                    "base_url": "http://p.test/v1",
                    "keys": [{"value": "a"}, {"value": "b", "weight": 4, "models": ["m"]}],
                }
            },
            "routes": {"r": ["p/m"], "other": ["p/other"]},
        },
        env={},
    )
    executor = Executor(
        build_providers(config.providers), FakeTransport(lambda _: FakeResponse(body=ANSWER)), random.Random(3)
    )
    planner = Planner(config.routes, config.providers, random.Random(3))

    async def key_for(route: str) -> str:
        served = await executor.run("chat", {"messages": []}, planner.plan([route]), 1e12, False, source=OPENAI_CHAT)
        await served.aclose()
        return served.key.name

    counts = Counter([await key_for("r") for _ in range(2000)])
    assert 0.75 < counts["p#1"] / 2000 < 0.85  # weight 4 against 1
    assert {await key_for("other") for _ in range(20)} == {"p#0"}  # p#1 is allowed for "m" only
    executor.state.cooldowns.on_failure("p#1", 429, 60, executor.clock())
    assert {await key_for("r") for _ in range(20)} == {"p#0"}  # p#1 rests after its 429
    executor.state.cooldowns.on_failure("p#0", 429, 60, executor.clock())
    served = await executor.run("chat", {"messages": []}, planner.plan(["r"]), 1e12, False, source=OPENAI_CHAT)
    await served.aclose()  # every key resting: no key is chosen, so the target is skipped, then tried as a last resort
    assert [a.reason for a in served.attempts] == ["skipped: circuit open or keys cooling down", "ok"]


async def test_with_a_key_resting_the_others_keep_their_weights_share() -> None:
    """A first try draws among all keys and checks only the one drawn; when that one rests, the draw is
    repeated among the eligible ones, which must leave each chosen in proportion to its weight."""
    keys = [{"value": "a", "weight": 1}, {"value": "b", "weight": 6}, {"value": "c", "weight": 4}]
    provider = {"type": "openai", "base_url": "http://p.test/v1", "keys": keys}
    config = parse_config({"providers": {"p": provider}, "routes": {"r": ["p/m"]}}, env={})
    executor = Executor(
        build_providers(config.providers), FakeTransport(lambda _: FakeResponse(body=ANSWER)), random.Random(5)
    )
    plan = Planner(config.routes, config.providers, random.Random(5)).plan(["r"])
    executor.state.cooldowns.on_failure("p#1", 429, 1e9, executor.clock())  # "b", the heaviest, rests
    counts: Counter[str] = Counter()
    for _ in range(4000):
        served = await executor.run("chat", {"messages": []}, plan, 1e12, False, source=OPENAI_CHAT)
        await served.aclose()
        counts[served.key.name] += 1
        assert [a.reason for a in served.attempts] == ["ok"]  # no skip recorded for the drawn resting key
    assert set(counts) == {"p#0", "p#2"}
    assert 0.16 < counts["p#0"] / 4000 < 0.24  # weight 1 against 4: a fifth, not (1 + 6) / 11 of the draws


def test_policies_are_inherited_and_overridden_down_the_tree() -> None:
    config = parse_config(
        {
            "providers": {"a": {"type": "openai", "api_key": "k"}},
            "routes": {
                "r": {
                    "fallback": [
                        "a/one",
                        {"target": "a/two", "retry": 4, "timeouts": {"first_token": 2}},
                        {"loadbalance": ["a/three"], "strategy": "round_robin", "mid_stream": "continue"},
                    ],
                    "retry": {"attempts": 2, "on": [503]},
                    "timeouts": {"first_token": 5, "total": 30},
                    "hedge": {"delay": 1.5},
                    "deadline": 60,
                }
            },
        },
        env={},
    )
    one, two, three = resolve_all(["r"], config.routes, config.providers, random.Random(0))
    assert one.policy.retry is not None
    assert one.policy.retry.attempts == 2
    assert one.policy.retry.retry_on == frozenset({503})
    assert one.policy.timeouts.first_token == 5
    assert one.policy.hedge_delay == 1.5
    assert one.policy.deadline == 60
    assert two.policy.retry is not None
    assert two.policy.retry.attempts == 4
    assert two.policy.timeouts.first_token == 2
    assert two.policy.timeouts.total == 30
    assert three.policy.mid_stream == "continue"
    assert one.policy.mid_stream is None


def test_planner_remembers_fixed_plans_and_redraws_load_balanced_ones() -> None:
    config = parse_config(
        {
            "providers": {"openai": {"api_key": "a"}, "groq": {"api_key": "b"}},
            "routes": {
                "steady": ["openai/gpt-4o-mini", "groq/llama"],
                "spread": {"loadbalance": ["groq/x", "groq/y", "groq/z"]},
            },
        },
        env={},
    )
    planner = Planner(config.routes, config.providers, random.Random(7))
    first = planner.plan(["steady"])
    assert planner.plan(["steady"]) is first  # built once
    assert [p.target.label for p in first] == ["openai/gpt-4o-mini", "groq/llama"]
    assert planner.plan(["steady", "groq/extra"]) is not first  # another name list is another plan
    orders = {tuple(p.target.model for p in planner.plan(["spread"])) for _ in range(40)}
    assert len(orders) > 1  # load-balanced: drawn again for every request
    with pytest.raises(NotFound):
        planner.plan(["nope"])


def test_live_statistics_are_kept_only_for_strategies_that_read_them() -> None:
    def routes(strategy: str) -> dict[str, object]:
        nested = {"loadbalance": ["groq/x", "groq/y"], "strategy": strategy}
        return {"r": ["openai/gpt-4o-mini", nested]}

    def config(strategy: str) -> Any:
        providers = {"openai": {"api_key": "a"}, "groq": {"api_key": "b"}}
        return parse_config({"providers": providers, "routes": routes(strategy)}, env={})

    assert reads_stats(config("least_outstanding").routes)  # nested under a fallback list
    assert reads_stats(config("lowest_latency").routes)
    assert not reads_stats(config("weighted").routes)
    assert not reads_stats(config("round_robin").routes)
    assert not reads_stats(CONFIG.routes)
