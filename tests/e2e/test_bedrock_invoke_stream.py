"""boto3's `invoke_model_with_response_stream`, unmodified, pointed at the gateway: the model's own body passed
through to Bedrock targets, its event-stream frames relayed as they came (each `chunk` carrying base64 bytes of
one of Claude's own events), failover before the first content, the usage read from the frames for governance,
a mid-stream break ending the stream with an exception frame (boto3 raises `EventStreamError`), non-Bedrock
targets skipped, and hostile input answered in Bedrock's error shape.

boto3 is synchronous: each call runs in a thread while the gateway and the simulators serve on the loop. The event
streams boto3 reads are decoded by botocore's own parser, which checks every frame's lengths and CRCs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError, EventStreamError

from sidestep.testing import running_gateway
from tests.e2e.test_bedrock_clients import BEDROCK_MODEL, Boto, Sims, bedrock, config, raw_post, sims

__all__ = ["bedrock", "sims"]  # the fixtures, used here by name

NATIVE = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 200,
    "messages": [{"role": "user", "content": "Tell me about failover"}],
}
pytestmark = pytest.mark.filterwarnings(  # as in test_bedrock_clients: botocore's pool drops closed sockets
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)


async def invoke_stream(client: Any, model: str, body: dict[str, Any] | bytes = NATIVE) -> dict[str, Any]:
    """The response, its model events decoded from the chunks (botocore parsed the frames), and the error
    boto3 raised while reading, if any."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    def read() -> dict[str, Any]:
        response = client.invoke_model_with_response_stream(modelId=model, body=raw)
        events: list[dict[str, Any]] = []
        error: EventStreamError | None = None
        try:
            for part in response["body"]:
                events.append(json.loads(part["chunk"]["bytes"]))  # noqa: PERF401 - keep what came before a raise
        except EventStreamError as exc:
            error = exc
        return {"response": response, "events": events, "error": error}

    return await asyncio.to_thread(read)


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")


async def test_the_models_own_events_come_through_and_their_usage_is_charged(
    sims: Sims, bedrock: Boto, tmp_path: Any
) -> None:
    log = tmp_path / "requests.log"
    governance = {
        "keys": {"app": {"key": "sk-app", "budget_usd": 1}},
        "pricing": {BEDROCK_MODEL: {"input": 1000, "output": 2000}},  # USD per million tokens
    }
    cfg = config(sims, {"claude": [f"aws/{BEDROCK_MODEL}"]}, server={"request_log": str(log)}, governance=governance)
    async with running_gateway(cfg) as gw, httpx.AsyncClient() as http:
        got = await invoke_stream(bedrock(gw.url, key="sk-app"), "claude")
        key = (await http.get(gw.url + "/sidestep/key", headers={"authorization": "Bearer sk-app"})).json()
    events, headers = got["events"], got["response"]["ResponseMetadata"]["HTTPHeaders"]
    assert got["error"] is None
    assert [e["type"] for e in events[:3]] == ["message_start", "content_block_start", "ping"]
    assert events[-1]["type"] == "message_stop" and "amazon-bedrock-invocationMetrics" in events[-1]
    assert text_of(events).startswith("Echo from aws: Tell me about failover")
    assert headers["content-type"] == "application/vnd.amazon.eventstream" and headers["x-sidestep-provider"] == "aws"
    sent = sims["aws"].sim.received[0]
    assert sent.path.endswith("/invoke-with-response-stream") and sent.body == NATIVE  # no gateway field added
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["usage"]["input"] == metrics["inputTokenCount"] > 0
    assert record["usage"]["output"] == metrics["outputTokenCount"] > 0 and not record.get("estimated")
    cost = (metrics["inputTokenCount"] * 1000 + metrics["outputTokenCount"] * 2000) / 1e6
    assert record["cost_usd"] == pytest.approx(cost) and record["key"] == "app"
    assert key["limits"][0]["budget"]["spent_usd"] == pytest.approx(cost)


async def test_a_503_target_fails_over_before_the_first_frame(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"claude": [f"aws/{BEDROCK_MODEL}@503", f"aws/{BEDROCK_MODEL}"]})
    async with running_gateway(cfg) as gw:
        got = await invoke_stream(bedrock(gw.url), "claude")
    headers = got["response"]["ResponseMetadata"]["HTTPHeaders"]
    assert got["error"] is None and events_complete(got["events"])
    assert headers["x-sidestep-attempts"] == "2" and headers["x-sidestep-fallback-index"] == "1"


@pytest.mark.parametrize("fault", ["stream_error_after=1", "malformed", "drop_after=2"])
async def test_a_broken_stream_before_any_content_fails_over_invisibly(sims: Sims, bedrock: Boto, fault: str) -> None:
    cfg = config(sims, {"claude": [f"aws/{BEDROCK_MODEL}@{fault}", f"aws/{BEDROCK_MODEL}"]})
    async with running_gateway(cfg) as gw:
        got = await invoke_stream(bedrock(gw.url), "claude")
    assert got["error"] is None and events_complete(got["events"])
    assert got["response"]["ResponseMetadata"]["HTTPHeaders"]["x-sidestep-attempts"] == "2"


def events_complete(events: list[dict[str, Any]]) -> bool:
    return events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"


@pytest.mark.parametrize("fault", ["drop_after=5", "drop_after=8"])
async def test_a_mid_stream_drop_ends_with_an_exception_boto3_raises(
    sims: Sims, bedrock: Boto, tmp_path: Any, fault: str
) -> None:
    log = tmp_path / "requests.log"
    route = {"fallback": [f"aws/{BEDROCK_MODEL}@{fault}", f"aws/{BEDROCK_MODEL}"], "mid_stream": "continue"}
    cfg = config(sims, {"claude": route}, server={"request_log": str(log)})  # type: ignore[dict-item]
    async with running_gateway(cfg) as gw:
        got = await invoke_stream(bedrock(gw.url), "claude")
    error, says = got["error"], "failed mid-stream"
    assert error is not None and error.response["Error"]["Code"] == "modelStreamErrorException" and says in str(error)
    assert got["events"] and got["events"][0]["type"] == "message_start"  # whole frames only, then the exception
    assert len(sims["aws"].sim.received) == 1  # the model's own events are never continued elsewhere
    record = json.loads(log.read_text().splitlines()[-1])
    assert says in record["error"] and record["usage"]["input"] > 0  # charged: Claude's message_start said


async def test_an_upstream_exception_mid_stream_reaches_boto3_as_it_came(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"claude": [f"aws/{BEDROCK_MODEL}@stream_error_after=6,message=overheated"]})
    async with running_gateway(cfg) as gw:
        got = await invoke_stream(bedrock(gw.url), "claude")
    error = got["error"]
    assert error is not None and error.response["Error"]["Code"] == "modelStreamErrorException"
    assert "overheated" in str(error) and "mid-stream" not in str(error)  # the upstream's frame, not the gateway's


async def test_a_route_without_bedrock_targets_is_refused_in_bedrocks_shape(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"elsewhere": ["oai/gpt-sim", "ant/claude-sim"]})
    async with running_gateway(cfg) as gw:
        with pytest.raises(ClientError) as refused:
            await invoke_stream(bedrock(gw.url), "elsewhere")
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "no invoke support" in str(refused.value)
    assert not sims["openai"].sim.received and not sims["claude"].sim.received


async def test_non_bedrock_targets_are_skipped_for_a_bedrock_one(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"mixed": ["oai/gpt-sim", f"aws/{BEDROCK_MODEL}"]})
    async with running_gateway(cfg) as gw:
        got = await invoke_stream(bedrock(gw.url), "mixed")
    assert got["error"] is None and events_complete(got["events"])
    assert got["response"]["ResponseMetadata"]["HTTPHeaders"]["x-sidestep-provider"] == "aws"
    assert not sims["openai"].sim.received


async def test_bad_input_is_refused_before_any_target(sims: Sims, bedrock: Boto) -> None:
    cfg = config(sims, {"claude": [f"aws/{BEDROCK_MODEL}"]}, server={"max_body_bytes": 4096})
    async with running_gateway(cfg) as gw:
        client = bedrock(gw.url)
        with pytest.raises(ClientError) as malformed:
            await invoke_stream(client, "claude", b'{"anthropic_version": ')
        with pytest.raises(ClientError) as not_object:
            await invoke_stream(client, "claude", b"[1, 2]")
        with pytest.raises(ClientError) as too_big:
            await invoke_stream(client, "claude", {**NATIVE, "system": "x" * 9000})
        with pytest.raises(ClientError) as injected:
            await invoke_stream(client, "claude\r\nX-Evil: 1")
    assert malformed.value.response["Error"]["Code"] == "ValidationException" and "not valid JSON" in str(
        malformed.value
    )
    assert "JSON object" in str(not_object.value)
    assert too_big.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert "control character" in str(injected.value)
    assert not sims["aws"].sim.received


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/model/..%2F..%2Fetc%2Fpasswd/invoke-with-response-stream", 400, "'..'"),
        ("/model/%00/invoke-with-response-stream", 400, "control character"),
        ("/model//invoke-with-response-stream", 404, "Unknown operation"),
    ],
)
async def test_hostile_model_ids_in_the_path_get_a_bedrock_shaped_4xx(
    sims: Sims, path: str, status: int, says: str
) -> None:
    async with running_gateway(config(sims, {"claude": [f"aws/{BEDROCK_MODEL}"]})) as gw:
        got, headers, answer = await raw_post(gw.port, path, json.dumps(NATIVE).encode())
    assert got == status and "x-amzn-errortype" in headers
    assert set(answer) == {"message"} and says in answer["message"]
    assert not sims["aws"].sim.received
