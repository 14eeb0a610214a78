"""An OpenAI Agents SDK loop (`openai-agents`, unmodified) through sidestep: an `Agent` with a function tool, on
`OpenAIResponsesModel` with an `AsyncOpenAI` client pointed at the gateway, run with `Runner.run` and
`Runner.run_streamed`. The route's first target is down (503) and its second speaks another format (Anthropic,
on the simulator): the model asks for the tool, the SDK runs it, sends the result back, and the answer is built
from it. Tracing is off, so nothing tries the network."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from sidestep.testing import RunningGateway, RunningSim, running_gateway
from tests.conftest import AttemptLog
from tests.e2e.test_native_providers import native_config

Sims = dict[str, RunningSim]
ASK = "What is the weather in Paris? tool_call=get_weather"


@pytest.fixture
async def gateway(sims: Sims) -> AsyncIterator[tuple[RunningGateway, AttemptLog]]:
    set_tracing_disabled(True)
    log = AttemptLog()
    config = native_config(sims, {"agent": ["primary/gpt-sim@503", "backup/claude-sonnet-4-5"]})
    async with running_gateway(config, observers=[log]) as gw:
        yield gw, log


def weather_agent(base_url: str, calls: list[str]) -> tuple[Agent[Any], AsyncOpenAI]:
    @function_tool
    def get_weather(city: str) -> str:
        """The weather for a city."""
        calls.append(city)
        return f"It is sunny and mild in {city} today"

    client = AsyncOpenAI(base_url=base_url, api_key="client-key", max_retries=0, timeout=20)
    model = OpenAIResponsesModel(model="agent", openai_client=client)
    agent = Agent(
        name="Forecaster",
        instructions="Answer with the tool's result.",
        tools=[get_weather],
        model=model,
        model_settings=ModelSettings(max_tokens=200),
    )
    return agent, client


async def test_runner_run_calls_the_tool_and_answers_from_it(gateway: Any, sims: Sims) -> None:
    gw, log = gateway
    calls: list[str] = []
    agent, client = weather_agent(gw.base_url, calls)
    async with client:
        result = await Runner.run(agent, ASK)
    assert calls == ["example"]  # the simulated model filled the schema's string with "example"
    assert "sunny and mild" in result.final_output and "Echo from backup" in result.final_output
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    sent = [r for r in sims["backup"].sim.received if r.path == "/v1/messages"]
    assert len(sent) == 2 and sent[0].body is not None and sent[1].body is not None
    assert sent[0].body["tools"][0]["name"] == "get_weather"
    result_block = sent[1].body["messages"][-1]["content"][0]
    assert result_block["type"] == "tool_result" and "sunny and mild" in str(result_block["content"])
    assert len(sims["primary"].sim.received) == 2  # each turn tried the first target, which was down
    assert [provider for provider, status, _ in log.seen if status == 503] == ["primary", "primary"]


async def test_runner_run_streamed(gateway: Any, sims: Sims) -> None:
    gw, _ = gateway
    calls: list[str] = []
    agent, client = weather_agent(gw.base_url, calls)
    async with client:
        streamed = Runner.run_streamed(agent, ASK)
        kinds = [event.type async for event in streamed.stream_events()]
    assert calls == ["example"]
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert "sunny and mild" in streamed.final_output
    assert [r.body["stream"] for r in sims["backup"].sim.received if r.body is not None] == [True, True]
