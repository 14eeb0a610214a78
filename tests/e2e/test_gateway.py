"""End to end over real HTTP: official OpenAI SDK → gateway → provider simulators, with faults."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from sidestep.testing import RunningSim, config_for, running_gateway, running_simulators
from tests.conftest import Sdk

MSG = [{"role": "user", "content": "Hello there, gateway"}]
Sims = dict[str, RunningSim]


def route(*targets: str) -> dict[str, list[str]]:
    return {"chat": list(targets)}


async def test_chat_is_served_by_the_first_healthy_target(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(config_for(sims, route("primary/gpt-4o-mini", "backup/m2"))) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
    completion = raw.parse()
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.content
    assert raw.headers["x-sidestep-provider"] == "primary"
    assert raw.headers["x-sidestep-model"] == "gpt-4o-mini"
    assert raw.headers["x-sidestep-attempts"] == "1"
    assert raw.headers["x-sidestep-request-id"].startswith("req_")
    received = sims["primary"].sim.received[-1]
    assert received.body is not None
    assert received.body["model"] == "gpt-4o-mini"
    assert received.headers["authorization"] == "Bearer key-primary"
    assert sims["backup"].sim.received == []


async def test_503_fails_over_to_the_next_target(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(config_for(sims, route("primary/m@status=503", "backup/m2"))) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-sidestep-provider"] == "backup"
    assert raw.headers["x-sidestep-attempts"] == "2"
    assert len(sims["primary"].sim.received) == 1


@pytest.mark.parametrize("fault", ["reset", "malformed", "status=500", "status=429,retry_after=1", "status=529"])
async def test_retryable_failures_fail_over(sdk: Sdk, sims: Sims, fault: str) -> None:
    async with running_gateway(config_for(sims, route(f"primary/m@{fault}", "backup/m2"))) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
    assert raw.headers["x-sidestep-provider"] == "backup"


async def test_hanging_provider_times_out_and_fails_over(sdk: Sdk, sims: Sims) -> None:
    config = config_for(sims, route("primary/m@hang", "backup/m2"), timeouts={"headers": 0.3})
    async with running_gateway(config) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
    assert raw.headers["x-sidestep-provider"] == "backup"


async def test_connection_refused_fails_over(sdk: Sdk, sims: Sims) -> None:
    config = config_for(sims, route("primary/m", "backup/m2"))
    config["providers"]["primary"]["base_url"] = "http://127.0.0.1:9/v1"  # nothing listens on discard
    async with running_gateway(config) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
    assert raw.headers["x-sidestep-provider"] == "backup"


async def test_caller_error_is_returned_at_once_without_failover(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(config_for(sims, route("primary/m@status=400", "backup/m2"))) as gw:
        with pytest.raises(openai.BadRequestError) as info:
            await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG)
    assert info.value.status_code == 400
    assert info.value.response.headers["x-sidestep-attempts"] == "1"
    assert sims["backup"].sim.received == []


async def test_all_targets_failed_names_every_attempt(sdk: Sdk, sims: Sims) -> None:
    config = config_for(sims, route("primary/a@status=503", "backup/b@status=500", "third/c@reset"))
    async with running_gateway(config) as gw:
        with pytest.raises(openai.APIStatusError) as info:
            await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG)
    assert info.value.status_code == 502
    message = info.value.message
    assert "primary/a@status=503: 503" in message
    assert "backup/b@status=500: 500" in message
    assert "third/c@reset" in message
    assert info.value.response.headers["x-sidestep-attempts"] == "3"


async def test_every_target_rate_limited_answers_429(sdk: Sdk, sims: Sims) -> None:
    config = config_for(sims, route("primary/a@status=429", "backup/b@status=429"))
    async with running_gateway(config) as gw:
        with pytest.raises(openai.RateLimitError):
            await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG)


async def test_stream_fails_over_before_the_first_content_byte(sdk: Sdk, sims: Sims) -> None:
    config = config_for(sims, route("primary/a@status=503", "backup/b@drop_after=0", "third/c"))
    async with running_gateway(config) as gw:
        raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG, stream=True)
        chunks = [chunk async for chunk in raw.parse()]
    assert raw.headers["x-sidestep-provider"] == "third"
    assert raw.headers["x-sidestep-attempts"] == "3"
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Echo from third")
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_stream_failure_after_content_ends_with_an_error_event(sdk: Sdk, sims: Sims) -> None:
    config = config_for(sims, route("primary/a@drop_after=3", "backup/b"))
    async with running_gateway(config) as gw:
        stream = await sdk(gw.base_url).chat.completions.create(model="chat", messages=MSG, stream=True)
        seen: list[ChatCompletionChunk] = []
        with pytest.raises(openai.APIError, match=r"failed mid-stream|ended the stream"):  # noqa: PT012
            async for chunk in stream:
                seen.append(chunk)  # noqa: PERF401
    assert seen  # content reached the client before the failure
    assert sims["backup"].sim.received == []


async def test_per_request_fallbacks_and_openrouter_models(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(config_for(sims)) as gw:
        client = sdk(gw.base_url)
        raw = await client.chat.completions.with_raw_response.create(
            model="primary/a@status=503", messages=MSG, extra_body={"fallbacks": ["backup/b"]}
        )
        assert raw.headers["x-sidestep-provider"] == "backup"
        raw = await client.chat.completions.with_raw_response.create(
            model="primary/a@status=502", messages=MSG, extra_body={"models": ["third/c"]}
        )
        assert raw.headers["x-sidestep-provider"] == "third"
    forwarded = sims["backup"].sim.received[-1].body
    assert forwarded is not None
    assert "fallbacks" not in forwarded
    assert "models" not in forwarded


async def test_tools_and_response_format_pass_through_untouched(sdk: Sdk, sims: Sims) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    async with running_gateway(config_for(sims, route("primary/a"))) as gw:
        completion = await sdk(gw.base_url).chat.completions.create(
            model="chat", messages=MSG, tools=tools, temperature=0.25, seed=7, extra_body={"vendor_x": {"k": [1]}}
        )
    call = completion.choices[0].message.tool_calls
    assert call
    assert call[0].function.name == "get_weather"
    body = sims["primary"].sim.received[-1].body
    assert body is not None
    assert body["tools"] == tools
    assert body["temperature"] == 0.25
    assert body["seed"] == 7
    assert body["vendor_x"] == {"k": [1]}


async def test_embeddings_fail_over(sdk: Sdk, sims: Sims) -> None:
    config = config_for(sims, {"embed": ["primary/e@status=503", "backup/text-embedding-3-small"]})
    async with running_gateway(config) as gw:
        raw = await sdk(gw.base_url).embeddings.with_raw_response.create(model="embed", input=["a", "b"], dimensions=8)
    result = raw.parse()
    assert len(result.data) == 2
    assert len(result.data[0].embedding) == 8
    assert raw.headers["x-sidestep-provider"] == "backup"


async def test_unknown_model_is_404_listing_routes(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(config_for(sims, route("primary/a"))) as gw:
        with pytest.raises(openai.NotFoundError) as info:
            await sdk(gw.base_url).chat.completions.create(model="nope", messages=MSG)
    assert "chat" in info.value.message
    assert "primary" in info.value.message


async def test_key_rotation_on_401_tries_the_providers_other_key(sdk: Sdk) -> None:
    async with running_simulators("primary", "backup", api_keys={"primary": ["good"]}) as own:
        config = config_for(own, route("primary/a", "backup/b"), keys={"primary": ["bad", "good"]})
        async with running_gateway(config) as gw:
            for _ in range(20):  # key choice is random: 20 tries miss "bad" with p = 2**-20
                raw = await sdk(gw.base_url).chat.completions.with_raw_response.create(model="chat", messages=MSG)
                assert raw.headers["x-sidestep-provider"] == "primary"
        seen_keys = {r.headers.get("authorization") for r in own["primary"].sim.received}
        assert seen_keys == {"Bearer bad", "Bearer good"}
        assert own["backup"].sim.received == []


async def test_models_health_and_ready(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(config_for(sims, route("primary/a"))) as gw:
        models = await sdk(gw.base_url).models.list()
        async with httpx.AsyncClient(base_url=gw.url) as http:
            assert (await http.get("/health")).json() == {"status": "ok"}
            assert (await http.get("/ready")).status_code == 200
    assert [m.id for m in models.data] == ["chat"]


async def test_http_level_errors_use_openai_error_json(sims: Sims) -> None:
    config = config_for(sims, route("primary/a"), server={"max_body_bytes": 2048})
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        bad = await http.post("/v1/chat/completions", content=b"{not json")
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"
        big = await http.post("/v1/chat/completions", content=b'{"x": "' + b"a" * 4096 + b'"}')
        assert big.status_code == 413
        assert "error" in big.json()
        assert (await http.get("/v2/whatever")).status_code == 404
        wrong = await http.get("/v1/chat/completions")
        assert wrong.status_code == 405
        assert "POST" in wrong.json()["error"]["message"]
