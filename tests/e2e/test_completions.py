"""The legacy completions API (`client.completions.create`, stream and not) with the official OpenAI SDK: a
same-format pass-through to OpenAI-compatible providers that still serve it (the body as sent, the answer's
bytes as they came), failover, usage for governance and the logs, targets that cannot serve it skipped (and a
400 in OpenAI's shape when none can), hostile bodies refused before any upstream call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types import Completion

from sidestep.formats.openai_completions import OPENAI_COMPLETIONS
from sidestep.outcome import Exchange
from sidestep.testing import RunningSim, config_for, running_gateway
from tests.conftest import Sdk
from tests.e2e.test_native_providers import native_config

Sims = dict[str, RunningSim]
PROMPT = "Once upon a time in a gateway"


class Usages:
    """An observer that keeps (operation, provider, usage, estimated) of every finished exchange."""

    wants_usage = True

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any, bool]] = []

    def observe(self, exchange: Exchange) -> None:
        self.seen.append((exchange.operation, exchange.provider, exchange.usage, exchange.estimated))


async def test_create_passes_through_with_failover(sdk: Sdk, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    async with running_gateway(config_for(sims, {"text": ["primary/davinci-002", "backup/davinci-002"]})) as gw:
        raw = await sdk(gw.base_url).completions.with_raw_response.create(
            model="text", prompt=PROMPT, max_tokens=50, n=2, echo=True, logprobs=1, suffix=" The end.", user="u-1"
        )
    completion = raw.parse()
    Completion.model_validate_json(raw.content)  # strictly: the SDK's own type
    assert raw.headers["x-sidestep-provider"] == "backup" and raw.headers["x-sidestep-attempts"] == "2"
    assert completion.object == "text_completion" and len(completion.choices) == 2
    assert completion.choices[0].text.startswith(PROMPT + " Echo from backup")  # `echo` reached the upstream
    assert completion.choices[0].logprobs is not None and completion.choices[0].logprobs.tokens
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    sent = sims["backup"].sim.received[0]
    assert sent.path == "/v1/completions" and sent.body is not None
    expected = {"model": "davinci-002", "prompt": PROMPT, "max_tokens": 50, "n": 2, "echo": True, "logprobs": 1}
    assert sent.body == {**expected, "suffix": " The end.", "user": "u-1"}  # every field as sent, model rewritten
    assert sims["primary"].sim.received[0].path == "/v1/completions"  # tried first, 503


async def test_prompt_lists_and_token_arrays_pass_through(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(config_for(sims, {"text": ["primary/m"]})) as gw:
        client = sdk(gw.base_url)
        several = await client.completions.create(model="text", prompt=["first one", "second one"])
        tokens = await client.completions.create(model="text", prompt=[1212, 318, 257])
        batches = await client.completions.create(model="text", prompt=[[1212, 318], [257]])
    assert [c.text.split(":")[1].split(".")[0].strip() for c in several.choices] == ["first one", "second one"]
    assert "<1212> <318> <257>" in tokens.choices[0].text and len(batches.choices) == 2
    prompts = [r.body["prompt"] for r in sims["primary"].sim.received if r.body is not None]
    assert prompts == [["first one", "second one"], [1212, 318, 257], [[1212, 318], [257]]]


async def test_stream_is_relayed_as_sent_with_usage(sdk: Sdk, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    recorder = Usages()
    config = config_for(sims, {"text": ["primary/m", "backup/m"]})
    async with running_gateway(config, observers=[recorder]) as gw:
        client = sdk(gw.base_url)
        stream = await client.completions.create(
            model="text", prompt=PROMPT, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        quiet = await client.completions.create(model="text", prompt=PROMPT, stream=True)
        quiet_chunks = [chunk async for chunk in quiet]
    text = "".join(choice.text for chunk in chunks for choice in chunk.choices)
    assert text.startswith(" Echo from backup") and chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all(chunk.usage is None for chunk in quiet_chunks)  # asked for by the gateway, removed for the client
    assert "".join(c.text for chunk in quiet_chunks for c in chunk.choices) == text
    assert sims["backup"].sim.received[1].body["stream_options"] == {"include_usage": True}  # type: ignore[index]
    (first, second) = recorder.seen
    assert first[:2] == second[:2] == ("completions", "backup")
    assert first[2] is not None and first[2].output == chunks[-1].usage.completion_tokens and not first[3]
    assert second[2] == first[2] and not second[3]  # the tapped usage, not an estimate


async def test_a_stream_breaking_mid_way_ends_with_an_error_the_sdk_raises(sdk: Sdk, sims: Sims) -> None:
    recorder = Usages()
    async with running_gateway(
        config_for(sims, {"text": ["primary/m@drop_after=3", "backup/m"]}), observers=[recorder]
    ) as gw:
        stream = await sdk(gw.base_url).completions.create(model="text", prompt=PROMPT, stream=True)
        got: list[str] = []
        with pytest.raises(openai.APIError, match="failed mid-stream"):
            await _drain(stream, got)
    assert "".join(got).startswith(" Echo from primary")
    assert sims["backup"].sim.received == []  # after the first byte, no silent switch
    assert recorder.seen[0][2] is not None and recorder.seen[0][3]  # charged for what was relayed


async def test_targets_that_cannot_serve_it_are_skipped(sdk: Sdk, sims: Sims) -> None:
    config = native_config(sims, {"text": ["backup/claude-sonnet-4-5", "third/gemini-2.5-flash", "primary/m"]})
    async with running_gateway(config) as gw:
        raw = await sdk(gw.base_url).completions.with_raw_response.create(model="text", prompt=PROMPT)
    assert raw.headers["x-sidestep-provider"] == "primary" and raw.headers["x-sidestep-attempts"] == "3"
    assert sims["backup"].sim.received == [] and sims["third"].sim.received == []


async def test_a_route_no_target_of_which_serves_it_is_a_400_before_any_call(sdk: Sdk, sims: Sims) -> None:
    config = native_config(
        sims, {"text": ["backup/claude-sonnet-4-5", "third/gemini-2.5-flash"], "chat": ["primary/m"]}
    )
    config["providers"]["groq"] = {"type": "groq", "base_url": sims["primary"].base_url, "api_key": "k"}
    config["routes"]["fast"] = ["groq/llama"]  # an OpenAI-compatible provider without the legacy API
    config["providers"]["primary"]["lacks"] = {"chat-*": ["completions"]}
    config["routes"]["chatty"] = ["primary/chat-model"]
    async with running_gateway(config) as gw:
        client = sdk(gw.base_url)
        for route in ("text", "fast", "chatty"):
            with pytest.raises(openai.BadRequestError) as refused:
                await client.completions.create(model=route, prompt=PROMPT)
            error = refused.value.body
            assert isinstance(error, dict) and error["type"] == "invalid_request_error"
            assert error["code"] == "unsupported_operation"
            assert error["message"].startswith("No target of this route serves completions")
        stream_refused = await _post(gw.base_url, {"model": "text", "prompt": PROMPT, "stream": True})
    assert stream_refused.status_code == 400 and "error" in stream_refused.json()
    assert all(sim.sim.received == [] for sim in sims.values())


async def test_governance_request_log_and_metrics(sims: Sims, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    config = config_for(
        sims, {"text": ["primary/m@503", "backup/m"]}, server={"metrics": True, "request_log": str(log)}
    )
    config["governance"] = {
        "pricing": {"m": {"input": 1000.0, "output": 2000.0}},
        "keys": {"alice": {"key": "sk-alice", "budget_usd": 5, "models": ["text"]}},
    }
    async with running_gateway(config) as gw:
        async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="sk-alice", max_retries=0) as alice:
            await alice.completions.create(model="text", prompt=PROMPT)
            with pytest.raises(openai.PermissionDeniedError):
                await alice.completions.create(model="backup/m", prompt=PROMPT)
        async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="sk-nobody", max_retries=0) as stranger:
            with pytest.raises(openai.AuthenticationError):
                await stranger.completions.create(model="text", prompt=PROMPT)
        async with httpx.AsyncClient() as http:
            page = (await http.get(f"{gw.url}/metrics")).text
        governance = gw.gateway.plugin("governance")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    served = records[0]
    assert (served["operation"], served["provider"], served["status"]) == ("completions", "backup", 200)
    assert [a["target"] for a in served["attempts"]] == ["primary/m@503", "backup/m"]
    assert served["usage"]["output"] > 0 and served["cost_usd"] > 0
    assert [r["status"] for r in records[1:]] == [403, 401]
    assert 'sidestep_requests_total{endpoint="completions",status="200",provider="backup",model="m"} 1' in page
    assert governance is not None and any(spent > 0 for _, _, spent, _ in governance.budgets())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "text"}, "'prompt' is required"),
        ({"model": "text", "prompt": {"text": "hi"}}, "'prompt' must be"),
        ({"model": "text", "prompt": []}, "'prompt' must be"),
        ({"model": "text", "prompt": ["a", 1]}, "'prompt' must be"),
        ({"model": "text", "prompt": [[1, [2]]]}, "'prompt' must be"),
        ({"model": "text", "prompt": [True, False]}, "'prompt' must be"),
        ({"model": "text", "prompt": [-1]}, "'prompt' must be"),
        ({"model": "text", "prompt": "hi", "stream": "yes"}, "'stream' must be a boolean"),
        ({"model": "text", "messages": [{"role": "user", "content": "hi"}]}, "/v1/chat/completions"),
        ({"prompt": "hi"}, "'model' is required"),
        ({"model": "../../admin", "prompt": "hi"}, "not a valid model name"),
        ({"model": "text\r\nx-injected: 1", "prompt": "hi"}, "not a valid model name"),
        ({"model": "t" * 300, "prompt": "hi"}, "longer than 256"),
        ({"model": "text", "prompt": "hi", "fallbacks": "backup/m"}, "'fallbacks' must be an array"),
    ],
)
async def test_hostile_bodies_are_400s_in_openai_shape(sims: Sims, body: dict[str, Any], needle: str) -> None:
    async with running_gateway(config_for(sims, {"text": ["primary/m"]})) as gw:
        answer = await _post(gw.base_url, body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert needle in error["message"] and error["type"] == "invalid_request_error"
    assert sims["primary"].sim.received == []


async def test_malformed_deep_and_oversized_bodies(sims: Sims) -> None:
    config = config_for(sims, {"text": ["primary/m"]}, server={"max_body_bytes": 100_000})
    async with running_gateway(config) as gw, httpx.AsyncClient(timeout=20) as http:
        url = f"{gw.base_url}/completions"
        broken = await http.post(url, content=b'{"model": "text", "prompt": ')
        deep = await http.post(url, content=b'{"model":"text","prompt":' + b"[" * 5000 + b"]" * 5000 + b"}")
        large = await http.post(url, content=b'{"model":"text","prompt":"' + b"x" * 200_000 + b'"}')
        wrong = await http.get(url)
        unknown = await http.post(url, json={"model": "nope", "prompt": "hi"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]
    assert deep.status_code == 400 and deep.json()["error"]["type"] == "invalid_request_error"
    assert large.status_code == 413 and large.json()["error"]["code"] == "request_too_large"
    assert wrong.status_code == 405 and "POST" in wrong.json()["error"]["message"]
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert sims["primary"].sim.received == []


async def test_an_upstream_refusal_comes_back_as_it_was(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(config_for(sims, {"text": ["primary/m", "backup/m"]})) as gw:
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk(gw.base_url).completions.create(model="text", prompt=PROMPT, n=500)
    assert "between 1 and 128" in refused.value.message and sims["backup"].sim.received == []


def test_the_format_reads_back_what_it_writes() -> None:
    body = {"model": "m", "prompt": "hello there", "max_tokens": 5, "stop": "\n", "stream": True, "echo": True}
    request = OPENAI_COMPLETIONS.read_request(body)
    assert request.messages[0].text == "hello there" and request.stop == ["\n"] and request.extras == {"echo": True}
    written = OPENAI_COMPLETIONS.write_request(request)
    assert written["prompt"] == "hello there" and written["stream_options"] == {"include_usage": True}
    writer = OPENAI_COMPLETIONS.stream_writer("m", True)
    reader = OPENAI_COMPLETIONS.stream_reader()
    from sidestep.core.model import Event, Usage

    out = b"".join(
        writer.write(event)
        for event in [
            Event(kind="start", id="abc", model="m"),
            Event(kind="text", text="Hi"),
            Event(kind="finish", finish="length"),
            Event(kind="usage", usage=Usage(input=2, output=1)),
            Event(kind="end"),
        ]
    )
    kinds = [(e.kind, e.text, e.finish) for e in reader.feed(out)]
    assert kinds[:3] == [("start", "", None), ("text", "Hi", None), ("finish", "", "length")]
    assert kinds[-1][0] == "end" and OPENAI_COMPLETIONS.stream_complete(out[-24:])
    answer = OPENAI_COMPLETIONS.read_response(
        OPENAI_COMPLETIONS.write_response(
            OPENAI_COMPLETIONS.read_response(
                b'{"id":"cmpl-1","model":"m","choices":[{"text":"ok","finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}'
            )
        )
    )
    assert answer.parts[0].text == "ok" and answer.finish == "length" and answer.usage.output == 1  # type: ignore[union-attr]
    Completion.model_validate_json(OPENAI_COMPLETIONS.write_response(answer))


async def _drain(stream: Any, texts: list[str]) -> None:
    async for chunk in stream:
        texts += [choice.text for choice in chunk.choices]


async def _post(base_url: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(f"{base_url}/completions", json=body, headers={"authorization": "Bearer x"})


async def test_a_continued_stream_extends_the_prompt_by_what_was_sent(sdk: Sdk, sims: Sims) -> None:
    route = {"text": {"fallback": ["primary/m@drop_after=3", "backup/m"], "mid_stream": "continue"}}
    async with running_gateway(config_for(sims, route)) as gw:
        client = sdk(gw.base_url)
        stream = await client.completions.create(model="text", prompt=PROMPT, stream=True)
        chunks = [chunk async for chunk in stream]
        several = await client.completions.create(model="text", prompt=[PROMPT, PROMPT], stream=True)
        got: list[str] = []
        with pytest.raises(openai.APIError, match="failed mid-stream"):
            await _drain(several, got)  # two prompts: no single text to continue from
    text = "".join(choice.text for chunk in chunks for choice in chunk.choices)
    sent = next(r.body for r in sims["backup"].sim.received if r.body is not None)
    assert "messages" not in sent and sent["prompt"].startswith(PROMPT + " Echo from primary")
    partial = sent["prompt"][len(PROMPT) :]
    assert text.startswith(partial) and " Echo from backup" in text[len(partial) :]
    assert len({chunk.id for chunk in chunks}) == 1  # one stream for the client
    assert len(sims["backup"].sim.received) == 1


@pytest.mark.parametrize("fault", ["error_200", "malformed", "status=429", "reset", "blocked"])
async def test_the_simulators_faults_apply_and_fail_over(sdk: Sdk, sims: Sims, fault: str) -> None:
    async with running_gateway(config_for(sims, {"text": [f"primary/m@{fault}", "backup/m"]})) as gw:
        raw = await sdk(gw.base_url).completions.with_raw_response.create(model="text", prompt=PROMPT)
    if fault == "blocked":  # a content filter is an answer, not a failure: it comes back as it is
        assert raw.headers["x-sidestep-provider"] == "primary"
        assert raw.parse().choices[0].finish_reason == "content_filter"
        return
    assert raw.headers["x-sidestep-provider"] == "backup" and raw.headers["x-sidestep-attempts"] == "2"
    assert raw.parse().choices[0].text.startswith(" Echo from backup")
