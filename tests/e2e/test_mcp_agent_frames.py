"""Agent mode streamed to every client's stream shape: google-genai on `alt=sse` (blank lines, never `: …`
comments, which it would parse as JSON), Gemini's JSON array read by a raw HTTP client (`application/json`,
opened with `[`, whitespace keep-alives, one valid JSON document even after a failure) and boto3's
`converse_stream` (AWS event-stream frames, no notes at all). The OpenAI and Anthropic shapes are
`test_mcp_agent_stream.py`'s."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import EventStreamError
from google import genai
from google.genai import types

from tests.e2e.test_mcp_agent_stream import KEY, Records, _filler, _gateway

ANSWER = f"Echo from sim: 2. {_filler()}"
BODY = {"contents": [{"role": "user", "parts": [{"text": "tool_call=files__add"}]}]}

# botocore's urllib3 pool drops a connection the gateway closed without closing its socket (test_bedrock_clients).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture
async def gemini() -> AsyncIterator[Any]:
    clients: list[genai.Client] = []

    def make(url: str) -> genai.Client:
        client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=url, timeout=20_000))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aio.aclose()


@pytest.fixture
def bedrock() -> Iterator[Any]:
    clients: list[Any] = []

    def make(url: str) -> Any:
        session = boto3.session.Session(
            aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="not-checked", region_name="us-east-1"
        )
        config = BotoConfig(retries={"total_max_attempts": 1}, read_timeout=20, connect_timeout=5)
        client = session.client("bedrock-runtime", endpoint_url=url, config=config)

        def add_key(request: Any, **_: Any) -> None:
            request.headers["x-api-key"] = KEY

        client.meta.events.register("before-send.bedrock-runtime.*", add_key)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


async def _stream(url: str, query: str = "") -> tuple[httpx.Response, bytes]:
    async with httpx.AsyncClient(timeout=20, headers={"x-goog-api-key": KEY}) as http:
        response = await http.post(
            f"{url}/v1beta/models/{{}}:streamGenerateContent{query}".format("thinking"), json=BODY
        )
    return response, response.content


def _converse_stream(client: Any, model: str) -> list[dict[str, Any]]:
    ask = [{"role": "user", "content": [{"text": "tool_call=files__add"}]}]
    return list(client.converse_stream(modelId=model, messages=ask)["stream"])


async def test_google_genai_streams_the_answer_through_agent_mode(gemini: Any) -> None:
    records = Records()
    async with _gateway(records, keepalive=0.1) as gw:  # keep-alives while each turn thinks, and the step notes
        stream = await gemini(gw.url).aio.models.generate_content_stream(
            model="thinking", contents="tool_call=files__add"
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(chunk.text or "" for chunk in chunks) == ANSWER
    assert not any(chunk.function_calls for chunk in chunks)  # the gateway ran the call
    [record] = [ex for ex in records.seen if ex.operation == "chat"]
    assert [a.provider for a in record.attempts] == ["agent", "mcp:files", "agent"]


async def test_gemini_sse_carries_blank_lines_where_others_get_comments() -> None:
    async with _gateway(keepalive=0.1) as gw:
        response, body = await _stream(gw.url, "?alt=sse")
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    lines = body.decode().splitlines()
    assert not any(line.startswith(":") for line in lines)  # no SSE comment: google-genai would parse it as JSON
    data = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]
    text = "".join(p.get("text", "") for d in data for p in d["candidates"][0].get("content", {}).get("parts", []))
    assert text == ANSWER and lines.count("") > len(data) + 2  # keep-alives and step notes: blank lines


async def test_the_gemini_array_is_one_json_document_with_whitespace_keepalives() -> None:
    async with _gateway(keepalive=0.1) as gw:
        response, body = await _stream(gw.url)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert body.startswith(b"[") and b"\r\n\r\n" in body  # opened with the head; whitespace inside it
    elements = json.loads(body)
    parts = [p for e in elements for p in e["candidates"][0].get("content", {}).get("parts", [])]
    assert "".join(p.get("text", "") for p in parts) == ANSWER
    assert not any("functionCall" in p for p in parts)
    assert elements[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_a_gemini_array_that_fails_after_a_step_ends_with_an_error_element() -> None:
    async with _gateway(max_steps=1, keepalive=0.1) as gw:
        response, body = await _stream(gw.url)
    assert response.status_code == 200 and body.startswith(b"[")
    elements = json.loads(body)  # still one valid document
    assert elements[-1]["error"]["message"] == "agent mode: no final answer after 1 model turns"


async def test_a_gemini_array_that_fails_before_anything_is_an_error_status() -> None:
    async with _gateway() as gw, httpx.AsyncClient(timeout=20, headers={"x-goog-api-key": KEY}) as http:
        response = await http.post(f"{gw.url}/v1beta/models/down:streamGenerateContent", json=BODY)
    assert response.status_code == 502 and "error" in response.json()


async def test_boto3_converse_stream_through_agent_mode_reads_frames_only(bedrock: Any) -> None:
    records = Records()
    async with _gateway(records, keepalive=0.1) as gw:
        client = bedrock(gw.url)
        events = await asyncio.to_thread(_converse_stream, client, "thinking")
    kinds = [next(iter(event)) for event in events]  # botocore checks every frame's lengths and CRCs
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    assert text == ANSWER and not any("toolUse" in json.dumps(e) for e in events)
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    [record] = [ex for ex in records.seen if ex.operation == "converse"]
    assert [a.provider for a in record.attempts] == ["agent", "mcp:files", "agent"]


async def test_boto3_sees_the_step_limit_as_a_stream_error(bedrock: Any) -> None:
    async with _gateway(max_steps=1, keepalive=0.1) as gw:
        client = bedrock(gw.url)
        with pytest.raises(EventStreamError, match="no final answer after 1 model turns"):
            await asyncio.to_thread(_converse_stream, client, "chat")


async def test_the_converse_stream_head_is_the_event_stream_type() -> None:
    async with _gateway(keepalive=0.1) as gw, httpx.AsyncClient(timeout=20, headers={"x-api-key": KEY}) as http:
        ask = {"messages": [{"role": "user", "content": [{"text": "tool_call=files__add"}]}]}
        response = await http.post(f"{gw.url}/model/thinking/converse-stream", json=ask)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    assert b"sidestep-mcp" not in response.content and not response.content.startswith(b":")


async def test_boto3_converse_without_a_stream_gets_the_final_answer(bedrock: Any) -> None:
    records = Records()
    async with _gateway(records) as gw:
        ask = [{"role": "user", "content": [{"text": "tool_call=files__add"}]}]
        answer = await asyncio.to_thread(bedrock(gw.url).converse, modelId="chat", messages=ask)
    assert answer["output"]["message"]["content"] == [{"text": ANSWER}]
    assert answer["stopReason"] == "end_turn"
    [record] = [ex for ex in records.seen if ex.operation == "converse"]
    assert [a.provider for a in record.attempts] == ["agent", "mcp:files", "agent"]


async def test_a_converse_request_whose_tool_config_is_not_an_object_is_refused() -> None:
    async with _gateway() as gw, httpx.AsyncClient(timeout=20, headers={"x-api-key": KEY}) as http:
        ask = {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "toolConfig": ["not", "an", "object"]}
        response = await http.post(f"{gw.url}/model/chat/converse-stream", json=ask)
    assert response.status_code == 400 and "toolConfig" in response.text


async def test_a_bedrock_clients_own_tool_is_kept_beside_the_mcp_tools_and_left_to_it(bedrock: Any) -> None:
    mine = {"toolSpec": {"name": "mine", "inputSchema": {"json": {"type": "object", "properties": {}}}}}

    def read() -> list[dict[str, Any]]:
        ask = [{"role": "user", "content": [{"text": "tool_call=mine"}]}]
        stream = bedrock(gw.url).converse_stream(modelId="chat", messages=ask, toolConfig={"tools": [mine]})
        return list(stream["stream"])

    async with _gateway() as gw:
        events = await asyncio.to_thread(read)
    starts = [e["contentBlockStart"]["start"]["toolUse"]["name"] for e in events if "contentBlockStart" in e]
    assert starts == ["mine"] and events[-2]["messageStop"]["stopReason"] == "tool_use"
