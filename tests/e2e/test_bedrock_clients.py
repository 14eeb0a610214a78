"""boto3's `bedrock-runtime` client, unmodified, pointed at the gateway (`endpoint_url`): Converse and
ConverseStream through routes whose first target is down and whose second speaks another format (the issue's
"done when"), passed through to Bedrock targets, tools, InvokeModel, governance keys beside boto3's own SigV4
signature, and hostile input answered in Bedrock's error shape (boto3 raises the matching exception).

boto3 is synchronous: each call runs in a thread (`call`) while the gateway and the simulators serve on the loop.
The event streams boto3 reads are decoded by botocore's own parser, which checks every frame's lengths and CRCs.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, EventStreamError

from sidestep.testing import RunningSim, running_gateway, running_simulators

Sims = dict[str, RunningSim]
ASK = [{"role": "user", "content": [{"text": "Tell me about failover"}]}]
TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "Weather for a city",
                "inputSchema": {
                    "json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
                },
            }
        }
    ]
}
BEDROCK_MODEL = "us.anthropic.claude-3-5-haiku-20241022-v1:0"  # ':' in the id: boto3 sends it as %3A


@pytest.fixture
async def sims() -> AsyncIterator[Sims]:
    async with running_simulators("openai", "claude", "aws") as running:
        yield running


def config(sims: Sims, routes: dict[str, list[str]], **extra: Any) -> dict[str, Any]:
    def url(name: str) -> str:
        return f"http://127.0.0.1:{sims[name].port}"

    providers = {
        "oai": {"type": "openai", "base_url": url("openai") + "/v1", "api_key": "key-openai"},
        "ant": {"type": "anthropic", "base_url": url("claude"), "api_key": "key-claude"},
        "aws": {"type": "bedrock", "base_url": url("aws"), "region": "us-east-1", "api_key": "ABSK-sim-key"},
    }
    return {"providers": providers, "routes": routes, **extra}


Boto = Callable[..., Any]


@pytest.fixture
def bedrock() -> Iterator[Boto]:
    """Make boto3 bedrock-runtime clients on the gateway: signed with SigV4 as always (the gateway does not
    verify it), and, when `key` is given, sending the gateway's virtual key as `x-api-key` (or `bearer`) — the
    README's recipe. Every one is closed after the test. (boto3's own Bedrock API keys, `AWS_BEARER_TOKEN_BEDROCK`,
    reach the gateway the same way, as a Bearer token, but botocore sends them over HTTPS only.)"""
    clients: list[Any] = []

    def make(url: str, key: str | None = None, bearer: bool = False) -> Any:
        session = boto3.session.Session(
            aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="not-checked", region_name="us-east-1"
        )
        retries = BotoConfig(retries={"total_max_attempts": 1}, read_timeout=20, connect_timeout=5)
        client = session.client("bedrock-runtime", endpoint_url=url, config=retries)
        if key is not None:

            def add_key(request: Any, **_: Any) -> None:
                if bearer:  # in place of the SigV4 signature
                    request.headers["Authorization"] = f"Bearer {key}"
                else:
                    request.headers["x-api-key"] = key

            client.meta.events.register("before-send.bedrock-runtime.*", add_key)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
    gc.collect()  # what botocore's pool dropped unclosed is collected here, under this module's warning filter


# botocore's urllib3 pool drops a connection the gateway closed (an error answer, the end of an event stream)
# without closing its socket; collected later, it is an unraisable ResourceWarning in whichever test runs then.
# The gateway's own sockets are checked by tests/e2e/test_stream_leaks.py and `make soak`, not by this warning.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)


async def call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, **kwargs)


async def stream(client: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Every event of a converse_stream, read by botocore's event-stream parser."""

    def read() -> list[dict[str, Any]]:
        return list(client.converse_stream(**kwargs)["stream"])

    return await asyncio.to_thread(read)


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)


def raised(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


# -- the "done when": a down first target, a second in another format --------------------------------


async def test_converse_fails_over_from_a_down_bedrock_target_to_openai(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"smart": ["aws/m@503", "oai/gpt-sim"]})
    async with running_gateway(cfg) as gw:
        answer = await call(
            bedrock(gw.url).converse,
            modelId="smart",
            messages=ASK,
            system=[{"text": "Be brief."}],
            inferenceConfig={"maxTokens": 300, "temperature": 0.2},
        )
    headers = answer["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-sidestep-provider"] == "oai" and headers["x-sidestep-attempts"] == "2"
    assert "Echo from openai" in answer["output"]["message"]["content"][0]["text"]
    assert answer["stopReason"] == "end_turn" and answer["usage"]["inputTokens"] > 0
    assert answer["usage"]["totalTokens"] == answer["usage"]["inputTokens"] + answer["usage"]["outputTokens"]
    sent = sims["openai"].sim.received[0].body
    assert sent is not None and sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 300 and sent["model"] == "gpt-sim" and "stream" not in sent


async def test_converse_stream_fails_over_from_a_down_openai_target_to_anthropic(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"smart:v1": ["oai/gpt@503", "ant/claude-sim"]})  # ':' arrives as %3A
    async with running_gateway(cfg) as gw:
        events = await stream(bedrock(gw.url), modelId="smart:v1", messages=ASK, inferenceConfig={"maxTokens": 200})
    kinds = [next(iter(event)) for event in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    assert "contentBlockDelta" in kinds and "contentBlockStop" in kinds
    assert "Echo from claude" in text_of(events)
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    assert events[-1]["metadata"]["usage"]["outputTokens"] > 0
    sent = sims["claude"].sim.received[0].body
    assert sent is not None and sent["stream"] is True and sent["max_tokens"] == 200
    assert [r.path for r in sims["openai"].sim.received] == ["/v1/chat/completions"]  # the down one was tried


@pytest.mark.parametrize(
    ("fault", "says"),
    [("drop_after=3", "failed mid-stream"), ("stream_error_after=3", "The server had an error")],
)
async def test_a_stream_that_breaks_after_content_ends_with_an_exception_boto3_raises(
    sims: Sims, bedrock: Boto, fault: str, says: str
) -> None:
    cfg = config(sims, {"smart": [f"oai/gpt@{fault}", "ant/claude-sim"]})
    async with running_gateway(cfg) as gw:
        with pytest.raises(EventStreamError) as caught:
            await stream(bedrock(gw.url), modelId="smart", messages=ASK)
    assert caught.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert says in str(caught.value)
    assert not sims["claude"].sim.received  # content had gone out: no failover after the first byte


async def test_a_broken_stream_continued_by_another_target_stays_one_message(sims: Sims, bedrock: Boto) -> None:
    route = {"fallback": ["oai/gpt@drop_after=4", "ant/claude-sim"], "mid_stream": "continue"}
    async with running_gateway(config(sims, {"smart": route})) as gw:
        events = await stream(bedrock(gw.url), modelId="smart", messages=ASK)
    kinds = [next(iter(event)) for event in events]
    assert kinds.count("messageStart") == 1 and kinds[-2:] == ["messageStop", "metadata"]
    assert "Echo from claude" in text_of(events)  # the second target carried on, in the same message
    sent = sims["claude"].sim.received[0].body
    assert sent is not None and "Continue exactly" in str(sent["messages"][-1])


async def test_a_slow_first_token_sends_no_keepalive_comment_into_the_binary_stream(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"slow": ["oai/gpt@ttft=0.4"]}, server={"sse_keepalive": 0.05})
    async with running_gateway(cfg) as gw, httpx.AsyncClient() as http:
        events = await stream(bedrock(gw.url), modelId="slow", messages=ASK)
        raw = await http.post(gw.url + "/model/slow/converse-stream", content=VALID, timeout=10)
    assert "Echo from openai" in text_of(events) and next(iter(events[-1])) == "metadata"
    assert raw.headers["content-type"] == "application/vnd.amazon.eventstream"
    assert b": keep-alive" not in raw.content and b"sidestep provider=" not in raw.content


async def test_when_every_target_fails_boto3_raises_the_matching_exception(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"busy": ["oai/gpt@429", "aws/m@429"], "down": ["oai/gpt@503", "ant/c@503"]})
    async with running_gateway(cfg) as gw:
        client = bedrock(gw.url)
        with pytest.raises(client.exceptions.ThrottlingException) as busy:
            await call(client.converse, modelId="busy", messages=ASK)
        with pytest.raises(client.exceptions.ServiceUnavailableException) as down:
            await stream(client, modelId="down", messages=ASK)
    assert raised(busy.value) == ("ThrottlingException", 429)
    assert raised(down.value) == ("ServiceUnavailableException", 502)
    assert "oai" in str(down.value) and "ant" in str(down.value)  # the message names every attempt


# -- Bedrock targets: the client's body passes through -------------------------------------------------------


async def test_converse_passes_through_to_a_bedrock_target_as_sent(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"direct": [f"aws/{BEDROCK_MODEL}"]})
    request = {
        "messages": ASK,
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 50, "stopSequences": ["###"]},
        "additionalModelRequestFields": {"top_k": 5},
        "requestMetadata": {"team": "ops"},
    }
    async with running_gateway(cfg) as gw:
        client = bedrock(gw.url)
        answer = await call(client.converse, modelId="direct", **request)
        events = await stream(client, modelId=f"aws/{BEDROCK_MODEL}", **request)  # a target named directly
    assert "Echo from aws" in answer["output"]["message"]["content"][0]["text"]
    assert answer["metrics"]["latencyMs"] == 42  # the simulator's, passed through untouched
    assert "Echo from aws" in text_of(events) and events[-1]["metadata"]["usage"]["inputTokens"] > 0
    first, second = sims["aws"].sim.received
    quoted = BEDROCK_MODEL.replace(":", "%3A")
    assert first.path == f"/model/{quoted}/converse" and second.path == f"/model/{quoted}/converse-stream"
    assert first.body == request and second.body == request  # no gateway field (`stream`) reaches Bedrock
    assert first.headers["authorization"] == "Bearer ABSK-sim-key"  # the provider's key, not the client's


async def test_a_bedrock_targets_refusal_reaches_the_client_as_bedrock_sent_it(sims: Sims) -> None:
    cfg = config(sims, {"direct": [f"aws/{BEDROCK_MODEL}", "oai/gpt-sim"]})
    body = {"messages": ASK, "bogus": 1}  # boto3 validates its parameters and would not send it; a raw client might
    async with running_gateway(cfg) as gw:
        got, headers, answer = await raw_post(gw.port, "/model/direct/converse", json.dumps(body).encode())
    assert got == 400 and headers["x-amzn-errortype"].startswith("ValidationException")
    assert "extraneous key [bogus]" in answer["message"]  # Bedrock's own words, passed through
    assert not sims["openai"].sim.received  # a caller error: no failover


async def test_invoke_model_passes_through_to_bedrock_targets_only(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"direct": [f"aws/{BEDROCK_MODEL}"], "elsewhere": ["oai/gpt-sim", "ant/claude-sim"]})
    native = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with running_gateway(cfg) as gw:
        client = bedrock(gw.url)
        answer = await call(client.invoke_model, modelId="direct", body=json.dumps(native).encode())
        body = answer["body"].read()
        with pytest.raises(ClientError) as ineligible:
            await call(client.invoke_model, modelId="elsewhere", body=json.dumps(native).encode())
    assert b'"type":"message"' in body.replace(b" ", b"") and b"Echo from aws" in body
    sent = sims["aws"].sim.received[0]
    assert sent.path.endswith("/invoke") and sent.body == native
    assert "no invoke support" in str(ineligible.value)
    assert not sims["openai"].sim.received and not sims["claude"].sim.received


# -- tools ----------------------------------------------------------------------------------------------------


async def test_tool_config_comes_back_as_tool_use_from_an_openai_target(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"smart": ["aws/m@503", "oai/gpt-sim"]})
    ask = [{"role": "user", "content": [{"text": "Weather please tool_call=get_weather"}]}]
    async with running_gateway(cfg) as gw:
        client = bedrock(gw.url)
        first = await call(client.converse, modelId="smart", messages=ask, toolConfig=TOOLS)
        use = first["output"]["message"]["content"][-1]["toolUse"]
        follow = [
            *ask,
            first["output"]["message"],
            {
                "role": "user",
                "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"t": 21}}]}}],
            },
        ]
        second = await call(client.converse, modelId="smart", messages=follow, toolConfig=TOOLS)
        events = await stream(client, modelId="smart", messages=ask, toolConfig=TOOLS)
    assert first["stopReason"] == "tool_use" and use["name"] == "get_weather" and use["input"] == {"city": "example"}
    assert (
        second["stopReason"] == "end_turn" and "Echo from openai" in second["output"]["message"]["content"][0]["text"]
    )
    sent = sims["openai"].sim.received[1].body
    assert sent is not None and sent["messages"][-1] == {
        "role": "tool",
        "tool_call_id": use["toolUseId"],
        "content": '{"t":21}',
    }
    starts = [e["contentBlockStart"]["start"]["toolUse"] for e in events if "contentBlockStart" in e]
    arguments = "".join(
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events
        if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {})
    )
    assert starts == [{"toolUseId": use["toolUseId"], "name": "get_weather"}] and arguments == '{"city":"example"}'
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"


# -- governance: the gateway's keys beside boto3's SigV4 -----------------------------------------------------


GOVERNANCE = {"keys": {"team": {"key": "sk-team", "models": ["smart"]}, "slow": {"key": "sk-slow", "rpm": 1}}}


async def test_governance_reads_the_key_boto3_adds_and_ignores_the_sigv4_signature(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"smart": ["oai/gpt-sim"], "other": ["oai/gpt-sim"]}, governance=GOVERNANCE)
    async with running_gateway(cfg) as gw:
        answer = await call(bedrock(gw.url, "sk-team").converse, modelId="smart", messages=ASK)
        with pytest.raises(ClientError) as unsigned_only:  # SigV4 alone is no key
            await call(bedrock(gw.url).converse, modelId="smart", messages=ASK)
        with pytest.raises(ClientError) as wrong:
            await call(bedrock(gw.url, "sk-nobody").converse, modelId="smart", messages=ASK)
        with pytest.raises(ClientError) as forbidden:
            await stream(bedrock(gw.url, "sk-team"), modelId="other", messages=ASK)
        slow = bedrock(gw.url, "sk-slow", bearer=True)
        await call(slow.converse, modelId="smart", messages=ASK)
        with pytest.raises(slow.exceptions.ThrottlingException) as limited:
            await call(slow.converse, modelId="smart", messages=ASK)
    assert "Echo from openai" in answer["output"]["message"]["content"][0]["text"]
    assert raised(unsigned_only.value) == ("AccessDeniedException", 401)
    assert "virtual key" in str(unsigned_only.value)
    assert raised(wrong.value) == ("AccessDeniedException", 401)
    assert raised(forbidden.value)[0] == "AccessDeniedException"
    assert raised(limited.value) == ("ThrottlingException", 429)
    assert all("sk-" not in str(r.headers) for r in sims["openai"].sim.received)  # the client's key stays here


# -- hostile input: a Bedrock-shaped 4xx, never a 5xx ---------------------------------------------------------

VALID = b'{"messages": [{"role": "user", "content": [{"text": "x"}]}]}'


@pytest.mark.parametrize(
    ("path", "body", "status", "kind", "says"),
    [
        ("/model/smart/converse", b"{not json", 400, "ValidationException", "not valid JSON"),
        ("/model/smart/converse", b"[1, 2]", 400, "ValidationException", "JSON object"),
        ("/model/smart/converse", b'{"messages": "hi"}', 400, "ValidationException", "messages"),
        (
            "/model/smart/converse",
            b'{"messages": [{"role": "system", "content": []}]}',
            400,
            "ValidationException",
            "role",
        ),
        (
            "/model/smart/converse",
            b'{"messages": [{"role": "user", "content": [{"text": 5}]}]}',
            400,
            "ValidationException",
            "text",
        ),
        (
            "/model/smart/converse-stream",
            b'{"messages": [{"role": "user", "content": [{"text": "x"}]}], "inferenceConfig": {"maxTokens": "9"}}',
            400,
            "ValidationException",
            "maxTokens",
        ),
        (
            "/model/smart/converse",
            b'{"messages": [{"role": "user", "content": [{"text": "x"}]}], "toolConfig": {"tools": [{}]}}',
            400,
            "ValidationException",
            "toolSpec",
        ),
        (
            "/model/smart/converse",
            b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            400,
            "ValidationException",
            "nested",
        ),
        ("/model/smart%0d%0aX-Injected:%201/converse", VALID, 400, "ValidationException", "control character"),
        ("/model/..%2F..%2Fetc/converse", VALID, 400, "ValidationException", "'..'"),
        ("/model/../converse", VALID, 400, "ValidationException", "'..'"),
        (
            "/model/nowhere/converse",
            b'{"messages": [{"role": "user", "content": [{"text": "x"}]}]}',
            404,
            "ResourceNotFoundException",
            "nowhere",
        ),
        ("/model/smart/bogus", b"{}", 404, "ResourceNotFoundException", "Unknown operation"),
    ],
)
async def test_hostile_requests_get_a_bedrock_shaped_4xx(
    sims: Sims, path: str, body: bytes, status: int, kind: str, says: str
) -> None:
    async with running_gateway(config(sims, {"smart": ["oai/gpt-sim"]})) as gw:
        got, headers, answer = await raw_post(gw.port, path, body)  # raw: no client normalises the path
    assert got == status
    assert headers["x-amzn-errortype"].split(":")[0] == kind
    assert set(answer) == {"message"} and says in answer["message"]
    assert "x-injected" not in headers and "\r" not in answer["message"]
    assert not sims["openai"].sim.received


async def raw_post(port: int, path: str, body: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
    writer.write(head.encode() + b"connection: close\r\n\r\n" + body)
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    top, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *lines = top.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(payload)


async def test_boto3_raises_validation_and_method_errors_in_its_own_classes(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"smart": ["oai/gpt-sim"]}, server={"max_body_bytes": 4096})
    async with running_gateway(cfg) as gw, httpx.AsyncClient() as http:
        client = bedrock(gw.url)
        with pytest.raises(client.exceptions.ValidationException) as injected:
            await call(client.converse, modelId="smart\r\nX-Evil: 1", messages=ASK)
        with pytest.raises(client.exceptions.ValidationException) as streaming:
            await call(client.invoke_model_with_response_stream, modelId="smart", body=b"{}")
        with pytest.raises(client.exceptions.ValidationException) as too_big:
            await call(client.converse, modelId="smart", messages=[{"role": "user", "content": [{"text": "x" * 9000}]}])
        got = await http.get(gw.url + "/model/smart/converse")
    assert "control character" in str(injected.value)
    assert "no invoke support" in str(streaming.value)  # an OpenAI-only route: every target skipped
    assert raised(too_big.value)[1] == 413
    assert got.status_code == 405 and got.headers["x-amzn-errortype"].startswith("ValidationException")
    assert not sims["openai"].sim.received
