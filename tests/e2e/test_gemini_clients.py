"""google-genai clients pointed at sidestep (`http_options={"base_url": …}`), unmodified: `generate_content`,
its stream, function calls, `count_tokens` and `embed_content` under `/v1` (the SDK's default) and `/v1beta`,
served by a route whose first target is down and whose next speaks another format (translated through the
canonical model), or passed through to a Gemini target; virtual keys as `x-goog-api-key` or `?key=`; every
refusal a Gemini-shaped 4xx the SDK raises as `ClientError`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from sidestep.testing import RunningSim, running_gateway
from tests.conftest import Sdk
from tests.e2e.test_conformance import PROVIDERS
from tests.e2e.test_conformance import config as conformance_config
from tests.e2e.test_native_providers import native_config
from tests.sim_helpers import spent_by

Sims = dict[str, RunningSim]
Gemini = Callable[..., genai.Client]
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather for a city",
    parameters=types.Schema(
        type=types.Type.OBJECT,
        properties={"city": types.Schema(type=types.Type.STRING)},
        required=["city"],
    ),
)
FAILOVER = {"smart": ["primary/gpt-4o-mini", "backup/claude-sonnet-4-5"], "gem": ["third/gemini-2.5-flash"]}


@pytest.fixture
async def gemini() -> AsyncIterator[Gemini]:
    """Make google-genai clients pointed at a gateway; every one is closed after the test."""
    clients: list[genai.Client] = []

    def make(url: str, key: str = "client-key", version: str | None = None) -> genai.Client:
        options = types.HttpOptions(base_url=url, api_version=version, timeout=20_000)
        client = genai.Client(api_key=key, http_options=options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aio.aclose()


async def test_chat_fails_over_to_anthropic(gemini: Gemini, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    async with running_gateway(native_config(sims, FAILOVER)) as gw:
        config = types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=300, temperature=0.2)
        answer = await gemini(gw.url).aio.models.generate_content(
            model="smart", contents="Tell me about failover", config=config
        )
    assert answer.text is not None and "Echo from backup" in answer.text
    assert answer.candidates and answer.candidates[0].finish_reason == types.FinishReason.STOP
    usage = answer.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    headers = answer.sdk_http_response.headers if answer.sdk_http_response else {}
    assert headers is not None and headers["x-sidestep-provider"] == "backup"
    assert headers["x-sidestep-attempts"] == "2"
    assert [r.path for r in sims["primary"].sim.received] == ["/v1/chat/completions"]
    sent = sims["backup"].sim.received[0]
    assert sent.path == "/v1/messages" and sent.body is not None
    assert sent.body["system"] == "Be brief." and sent.body["max_tokens"] == 300
    assert sent.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Tell me about failover"}]}]


async def test_stream_fails_over_to_anthropic(gemini: Gemini, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    async with running_gateway(native_config(sims, FAILOVER)) as gw:
        stream = await gemini(gw.url).aio.models.generate_content_stream(model="smart", contents="hello there")
        chunks = [chunk async for chunk in stream]
    text = "".join(chunk.text or "" for chunk in chunks)
    assert text.startswith("Echo from backup: hello there.") and len(chunks) > 3
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None and last.usage_metadata.candidates_token_count
    assert sims["backup"].sim.received[0].body["stream"] is True  # type: ignore[index]


async def test_v1beta_and_openai_target(gemini: Gemini, sims: Sims) -> None:
    async with running_gateway(native_config(sims, {"chat": ["primary/gpt-4o-mini"]})) as gw:
        client = gemini(gw.url, version="v1beta")
        answer = await client.aio.models.generate_content(model="chat", contents="hi from beta")
        stream = await client.aio.models.generate_content_stream(model="chat", contents="streamed")
        text = "".join([chunk.text or "" async for chunk in stream])
    assert "Echo from primary" in (answer.text or "") and "Echo from primary" in text
    sent = sims["primary"].sim.received
    assert [r.path for r in sent] == ["/v1/chat/completions"] * 2
    assert sent[1].body is not None and sent[1].body["stream"] is True


async def test_passes_through_to_a_gemini_target(gemini: Gemini, sims: Sims) -> None:
    async with running_gateway(native_config(sims, FAILOVER)) as gw:
        client = gemini(gw.url)
        config = types.GenerateContentConfig(max_output_tokens=50, safety_settings=[])
        answer = await client.aio.models.generate_content(model="gem", contents="pass through", config=config)
        stream = await client.aio.models.generate_content_stream(model="gem", contents="as a stream")
        chunks = [chunk async for chunk in stream]
    assert "Echo from third" in (answer.text or "")
    assert "".join(c.text or "" for c in chunks).startswith("Echo from third: as a stream")
    plain, streamed = sims["third"].sim.received
    assert plain.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert plain.headers["x-goog-api-key"] == "key-third"  # the target's key, never the client's
    assert plain.body == {
        "contents": [{"parts": [{"text": "pass through"}], "role": "user"}],
        "generationConfig": {"maxOutputTokens": 50},
        "safetySettings": [],
    }  # the SDK's body as sent: nothing added (no `stream`), nothing lost
    assert streamed.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent" and streamed.query == "alt=sse"
    assert streamed.body is not None and "stream" not in streamed.body


async def test_function_call_round_trip_through_openai(gemini: Gemini, sims: Sims) -> None:
    tools = [types.Tool(function_declarations=[WEATHER])]
    config = types.GenerateContentConfig(
        tools=tools, automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
    )
    async with running_gateway(native_config(sims, {"chat": ["primary/gpt-4o-mini"]})) as gw:
        client = gemini(gw.url)
        asked = types.Content(role="user", parts=[types.Part(text="Weather in Paris? tool_call=get_weather")])
        first = await client.aio.models.generate_content(model="chat", contents=[asked], config=config)
        calls = first.function_calls or []
        assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "example"})]
        assert first.candidates and first.candidates[0].content
        result = types.Part.from_function_response(name="get_weather", response={"result": "sunny"})
        history = [asked, first.candidates[0].content, types.Content(role="user", parts=[result])]
        second = await client.aio.models.generate_content(model="chat", contents=history, config=config)
    assert second.text and not second.function_calls
    sent = sims["primary"].sim.received
    assert sent[0].body is not None and sent[0].body["tools"][0]["function"]["parameters"] == {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }  # Gemini's OpenAPI schema (`OBJECT`, `STRING`) as JSON Schema
    messages = sent[1].body["messages"]  # type: ignore[index]
    call_id = messages[1]["tool_calls"][0]["id"]
    assert calls[0].id == call_id  # the call's id went to the client and came back with the result
    assert messages[2] == {"role": "tool", "tool_call_id": call_id, "content": "sunny"}


async def test_streamed_function_call_from_anthropic(gemini: Gemini, sims: Sims) -> None:
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    async with running_gateway(native_config(sims, {"chat": ["backup/claude-sonnet-4-5"]})) as gw:
        stream = await gemini(gw.url).aio.models.generate_content_stream(
            model="chat", contents="Weather? tool_call=get_weather", config=config
        )
        chunks = [chunk async for chunk in stream]
    calls = [call for chunk in chunks for call in chunk.function_calls or []]
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "example"})]


async def test_embeddings_fail_over_and_pass_through(gemini: Gemini, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    routes = {"vectors": ["primary/text-embedding-3-small", "third/gemini-embedding-001"], "oa": ["backup/e"]}
    config = native_config(sims, routes, {"primary": "openai", "backup": "openai", "third": "gemini"})
    config["providers"]["backup"]["base_url"] += "/v1"
    async with running_gateway(config) as gw:
        client = gemini(gw.url)
        dims = types.EmbedContentConfig(output_dimensionality=16)
        native = await client.aio.models.embed_content(model="vectors", contents=["a b", "c d"], config=dims)
        translated = await client.aio.models.embed_content(model="oa", contents=["one", "two", "three"], config=dims)
        async with httpx.AsyncClient(base_url=gw.url) as http:
            single = await http.post(
                "/v1beta/models/oa:embedContent",
                json={"content": {"parts": [{"text": "solo"}]}},
                headers={"x-goog-api-key": "k"},
            )
    assert [len(e.values or []) for e in native.embeddings or []] == [16, 16]
    sent = sims["third"].sim.received[0]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.body is not None and {r["model"] for r in sent.body["requests"]} == {"models/gemini-embedding-001"}
    assert [len(e.values or []) for e in translated.embeddings or []] == [16, 16, 16]
    assert sims["backup"].sim.received[0].body == {"input": ["one", "two", "three"], "dimensions": 16, "model": "e"}
    assert single.status_code == 200 and len(single.json()["embedding"]["values"]) == 1536


async def test_count_tokens_passes_through_translates_or_is_ineligible(gemini: Gemini, sims: Sims) -> None:
    routes = {"gem": ["third/gemini-2.5-flash"], "claude": ["backup/claude-sonnet-4-5"], "oa": ["primary/gpt-4o"]}
    async with running_gateway(native_config(sims, routes)) as gw:
        client = gemini(gw.url)
        native = await client.aio.models.count_tokens(model="gem", contents="count these four words")
        counted = await client.aio.models.count_tokens(model="claude", contents="count these four words")
        with pytest.raises(errors.APIError) as refused:
            await client.aio.models.count_tokens(model="oa", contents="nobody counts here")
    assert native.total_tokens and counted.total_tokens
    assert sims["third"].sim.received[0].path == "/v1beta/models/gemini-2.5-flash:countTokens"
    sent = sims["backup"].sim.received[0]
    assert sent.path == "/v1/messages/count_tokens" and sent.body is not None
    assert set(sent.body) == {"model", "messages"}  # only what count_tokens takes
    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"  # before any upstream call
    assert "count_tokens" in (refused.value.message or "")
    assert sims["primary"].sim.received == []  # OpenAI-compatible targets have no count: skipped


async def test_virtual_keys_from_the_gemini_headers(gemini: Gemini, sims: Sims) -> None:
    config = native_config(sims, FAILOVER)
    config["governance"] = {"keys": {"alice": {"key": "sk-alice", "models": ["gem"]}}}
    async with running_gateway(config) as gw:
        answer = await gemini(gw.url, key="sk-alice").aio.models.generate_content(model="gem", contents="hi")
        with pytest.raises(errors.ClientError) as wrong:
            await gemini(gw.url, key="sk-wrong").aio.models.generate_content(model="gem", contents="hi")
        with pytest.raises(errors.ClientError) as forbidden:
            await gemini(gw.url, key="sk-alice").aio.models.generate_content(model="smart", contents="hi")
        async with httpx.AsyncClient(base_url=gw.url) as http:
            body = {"contents": [{"parts": [{"text": "hi"}]}]}
            by_query = await http.post("/v1beta/models/gem:generateContent?alt=json&key=sk-alice", json=body)
            bare = await http.post("/v1beta/models/gem:generateContent", json=body)
    assert "Echo from third" in (answer.text or "")
    assert wrong.value.code == 401 and wrong.value.status == "UNAUTHENTICATED"
    assert forbidden.value.code == 403 and forbidden.value.status == "PERMISSION_DENIED"
    assert by_query.status_code == 200 and by_query.json()["candidates"]
    assert bare.status_code == 401 and "x-goog-api-key" in bare.json()["error"]["message"]
    assert all("sk-alice" not in json.dumps(r.headers) for r in sims["third"].sim.received)


async def test_a_failure_mid_stream_is_an_error_the_sdk_raises(gemini: Gemini, sims: Sims) -> None:
    sims["primary"].sim.set_fault("stream_error_after=3")
    async with running_gateway(native_config(sims, {"chat": ["primary/gpt-4o-mini"]})) as gw:
        stream = await gemini(gw.url).aio.models.generate_content_stream(model="chat", contents="hello")
        seen: list[str] = []
        with pytest.raises(errors.APIError) as broken:
            await _read_into(stream, seen)
    assert seen and broken.value.code == 500 and broken.value.status == "INTERNAL"  # the upstream's error event


async def test_keepalive_while_waiting_is_invisible_to_the_sdk(gemini: Gemini, sims: Sims) -> None:
    sims["primary"].sim.set_fault("latency=0.4")
    config = native_config(sims, {"chat": ["primary/gpt-4o-mini"]})
    config["server"] = {"sse_keepalive": 0.05}
    async with running_gateway(config) as gw:
        async with httpx.AsyncClient(base_url=gw.url) as http:
            raw = await http.post(
                "/v1/models/chat:streamGenerateContent?alt=sse",
                json={"contents": [{"parts": [{"text": "slow"}]}]},
                headers={"x-goog-api-key": "k"},
            )
        sims["primary"].sim.received.clear()
        stream = await gemini(gw.url).aio.models.generate_content_stream(model="chat", contents="slow")
        text = "".join([chunk.text or "" async for chunk in stream])
    assert raw.text.startswith("\r\n") and ": " not in raw.text.split("data: ")[0]  # blank lines, no comments
    assert "Echo from primary: slow" in text


async def _read_into(stream: AsyncIterator[types.GenerateContentResponse], seen: list[str]) -> None:
    async for chunk in stream:  # one by one: what came before the error is kept
        seen.append(chunk.text or "")  # noqa: PERF401


def _deep(depth: int) -> bytes:
    return b'{"contents":[{"parts":[{"text":"hi","x":' + b"[" * depth + b"]" * depth + b"}]}]}"


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/v1/models/smart:generateContent", b"{not json", 400, "not valid JSON"),
        ("/v1/models/smart:generateContent", b"[1, 2]", 400, "must be a JSON object"),
        ("/v1/models/smart:generateContent", _deep(100_000), 400, "nested too deeply"),
        ("/v1/models/smart:generateContent", b'{"contents": "hi"}', 400, "contents"),
        ("/v1/models/smart:generateContent", b'{"contents": []}', 400, "contents"),
        ("/v1/models/smart:generateContent", b'{"contents": [{"parts": "x"}]}', 400, "parts"),
        ("/v1/models/smart:generateContent", b'{"contents": [{"role": "robot", "parts": [{}]}]}', 400, "role"),
        (
            "/v1beta/models/smart:generateContent",
            b'{"contents": [{"parts": [{"text": "x"}]}], "tools": {}}',
            400,
            "tools",
        ),
        (
            "/v1/models/smart:generateContent",
            b'{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxOutputTokens": "9"}}',
            400,
            "maxOutputTokens",
        ),
        (
            "/v1/models/smart:generateContent",
            b'{"contents": [{"parts": [{"text": "x"}]}], "stream": true}',
            400,
            "stream",
        ),
        (
            "/v1/models/smart:generateContent",
            b'{"contents": [{"parts": [{"text": "x"}]}], "messages": []}',
            400,
            "messages",
        ),
        (
            "/v1/models/smart%0d%0aX-Evil:%201:generateContent",
            b'{"contents": [{"parts": [{"text": "x"}]}]}',
            400,
            "model",
        ),
        ("/v1/models/..:generateContent", b'{"contents": [{"parts": [{"text": "x"}]}]}', 400, "model"),
        ("/v1beta/models/a%2F..%2Fb:generateContent", b'{"contents": [{"parts": [{"text": "x"}]}]}', 400, "model"),
        ("/v1/models/nope:generateContent", b'{"contents": [{"parts": [{"text": "x"}]}]}', 404, "nope"),
        ("/v1beta/models/smart:predictLongRunning", b"{}", 404, "Unknown path"),
        ("/v1/models/smart:embedContent", b'{"content": {"parts": []}}', 400, "parts"),
        ("/v1/models/smart:batchEmbedContents", b'{"requests": []}', 400, "requests"),
        (
            "/v1/models/smart:batchEmbedContents",
            b'{"requests": [' + b",".join([b'{"content": {"parts": [{"text": "x"}]}}'] * 101) + b"]}",
            400,
            "100",
        ),
        (
            "/v1/models/smart:embedContent",
            b'{"content": {"parts": [{"text": "x"}]}, "requests": []}',
            400,
            "exactly one",
        ),
        ("/v1/models/smart:countTokens", b'{"generateContentRequest": []}', 400, "generateContentRequest"),
    ],
)
async def test_hostile_input_is_a_gemini_4xx(sims: Sims, path: str, body: bytes, status: int, says: str) -> None:
    async with running_gateway(native_config(sims, FAILOVER)) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        answer = await http.post(path, content=body, headers={"x-goog-api-key": "k"})
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == status and error["status"] in ("INVALID_ARGUMENT", "NOT_FOUND")
    assert says in error["message"]
    assert all(sim.sim.received == [] for sim in sims.values())


async def test_parts_only_gemini_can_take_are_refused_for_other_targets(gemini: Gemini, sims: Sims) -> None:
    audio = types.Part.from_bytes(data=b"RIFF....", mime_type="audio/wav")
    async with running_gateway(native_config(sims, FAILOVER)) as gw:
        with pytest.raises(errors.ClientError) as refused:
            await gemini(gw.url).aio.models.generate_content(model="smart", contents=[audio, "what is this?"])
        passed = await gemini(gw.url).aio.models.generate_content(model="gem", contents=[audio, "what is this?"])
    assert refused.value.code == 400 and "audio/wav" in (refused.value.message or "")
    assert passed.text and sims["third"].sim.received[0].body is not None


async def test_other_clients_count_and_embed_on_gemini_targets(sdk: Sdk, claude: Any, sims: Sims) -> None:
    """The same seams the other way: an Anthropic client's count_tokens and an OpenAI client's embeddings
    served by a Gemini target."""
    routes = {"gem": ["third/gemini-2.5-flash"], "vec": ["third/gemini-embedding-001"]}
    async with running_gateway(native_config(sims, routes)) as gw:
        counted = await claude(gw.url).messages.count_tokens(
            model="gem", system="Be brief.", messages=[{"role": "user", "content": "count these words"}]
        )
        vectors = await sdk(gw.base_url).embeddings.create(model="vec", input=["a b", "c d"], dimensions=8)
    assert counted.input_tokens > 0
    count, embed = sims["third"].sim.received
    assert count.path == "/v1beta/models/gemini-2.5-flash:countTokens" and count.body is not None
    inner = count.body["generateContentRequest"]
    assert inner["model"] == "models/gemini-2.5-flash" and inner["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert [len(item.embedding) for item in vectors.data] == [8, 8]
    assert embed.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"


async def test_targets_lacking_what_a_gemini_request_needs_are_skipped(gemini: Gemini, sims: Sims) -> None:
    config = native_config(sims, {"chat": ["primary/text-only", "backup/claude-sonnet-4-5"]})
    config["providers"]["primary"]["lacks"] = {"text-*": ["vision", "tools"]}
    image = types.Part.from_bytes(data=b"\x89PNG\r\n\x1a\n", mime_type="image/png")
    tools = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    async with running_gateway(config) as gw:
        client = gemini(gw.url)
        seen = await client.aio.models.generate_content(model="chat", contents=[image, "What is this?"])
        called = await client.aio.models.generate_content(model="chat", contents="Weather?", config=tools)
        plain = await client.aio.models.generate_content(model="chat", contents="hi")
    assert "Echo from backup" in (seen.text or "") and called.function_calls
    assert "Echo from primary" in (plain.text or "")
    assert len(sims["primary"].sim.received) == 1  # only the plain request
    sent = sims["backup"].sim.received[0].body
    assert sent is not None and sent["messages"][0]["content"][0]["type"] == "image"


@pytest.mark.parametrize("second", ["third/gemini-2.5-flash", "backup/claude-sonnet-4-5"])
async def test_mid_stream_continue_carries_on_as_one_stream(gemini: Gemini, sims: Sims, second: str) -> None:
    route = {"chat": {"fallback": ["primary/a@drop_after=3", second], "mid_stream": "continue"}}
    async with running_gateway(native_config(sims, route)) as gw:
        stream = await gemini(gw.url).aio.models.generate_content_stream(model="chat", contents="hello")
        text = "".join([chunk.text or "" async for chunk in stream])  # no error: the switch is invisible
    name = second.partition("/")[0]
    assert text.startswith("Echo from primary") and f"Echo from {name}" in text
    body = sims[name].sim.received[-1].body
    assert body is not None
    if name == "third":  # a Gemini target: the gateway's continuation turns as Gemini contents
        assert "messages" not in body and [c["role"] for c in body["contents"]] == ["user", "model", "user"]
        assert body["contents"][1]["parts"][0]["text"] in text
    else:
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_every_provider_format_serves_a_gemini_client(gemini: Gemini, sims: Sims, kind: str) -> None:
    history = [
        types.Content(role="user", parts=[types.Part(text="My name is Ada.")]),
        types.Content(role="model", parts=[types.Part(text="Hello Ada.")]),
        types.Content(role="user", parts=[types.Part(text="What is my name?")]),
    ]
    brief = types.GenerateContentConfig(system_instruction="Be brief.")
    async with running_gateway(conformance_config(sims, kind)) as gw:
        client = gemini(gw.url)
        answer = await client.aio.models.generate_content(model="chat", contents=history, config=brief)
        stream = await client.aio.models.generate_content_stream(model="chat", contents=history, config=brief)
        chunks = [chunk async for chunk in stream]
    assert answer.text and "Echo from primary" in answer.text
    assert answer.usage_metadata is not None and answer.usage_metadata.prompt_token_count
    assert "".join(c.text or "" for c in chunks) == answer.text  # the same answer, streamed
    assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert len(sims["primary"].sim.received) == 2 and not sims["backup"].sim.received


async def test_cached_per_model_named_in_the_path(gemini: Gemini, sims: Sims) -> None:
    routes = {"one": ["third/gemini-2.5-flash"], "two": ["backup/claude-sonnet-4-5"], "oa": ["primary/e"]}
    config = native_config(sims, routes)
    config["cache"] = {}
    deterministic = types.GenerateContentConfig(temperature=0)
    async with running_gateway(config) as gw:
        client = gemini(gw.url)
        answers = [
            await client.aio.models.generate_content(model=model, contents="same words", config=deterministic)
            for model in ("one", "two", "one")
        ]
        stream = await client.aio.models.generate_content_stream(
            model="two", contents="same words", config=deterministic
        )
        replayed = "".join([chunk.text or "" async for chunk in stream])
        vectors = [await client.aio.models.embed_content(model=model, contents=["v"]) for model in ("one", "oa", "one")]
    cache = [(a.sdk_http_response.headers or {}).get("x-sidestep-cache") for a in answers if a.sdk_http_response]
    assert cache == ["miss", "miss", "hit"]  # "one" and "two" share the body, not the entry
    assert "Echo from third" in (answers[0].text or "") and "Echo from backup" in (answers[1].text or "")
    assert answers[2].text == answers[0].text and replayed == answers[1].text  # a hit replayed as a stream
    assert len(sims["backup"].sim.received) == 1
    assert vectors[2].embeddings == vectors[0].embeddings != vectors[1].embeddings
    assert [r.path.rpartition(":")[2] for r in sims["third"].sim.received] == ["generateContent", "batchEmbedContents"]


async def test_http_refusals_are_gemini_shaped(sims: Sims) -> None:
    config = native_config(sims, FAILOVER)
    config["server"] = {"max_body_bytes": 1024}
    body = {"contents": [{"parts": [{"text": "x" * 2048}]}]}
    async with running_gateway(config) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        large = await http.post("/v1beta/models/smart:generateContent", json=body)
        wrong_method = await http.get("/v1beta/models/smart:generateContent")
    assert large.status_code == 413 and large.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == 405
    assert all(sim.sim.received == [] for sim in sims.values())


@pytest.mark.parametrize("route", ["gem", "smart"])  # passed through (usage tapped), translated
async def test_spend_is_counted_from_gemini_streams(gemini: Gemini, sims: Sims, route: str) -> None:
    config = native_config(sims, FAILOVER)
    price = {"input": 1000.0, "output": 2000.0}
    config["governance"] = {
        "pricing": {"gemini-2.5-flash": price, "claude-sonnet-4-5": price, "gpt-4o-mini": price},
        "keys": {"alice": {"key": "sk-alice", "budget_usd": 100}},
    }
    async with running_gateway(config) as gw:
        stream = await gemini(gw.url, key="sk-alice").aio.models.generate_content_stream(model=route, contents="hi")
        chunks = [chunk async for chunk in stream]
        usage = chunks[-1].usage_metadata
        assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
        expected = (usage.prompt_token_count * 1000 + usage.candidates_token_count * 2000) / 1e6
        assert spent_by(gw, "key:alice") == pytest.approx(expected)
