"""`streamGenerateContent` without `alt=sse` (or with `alt=json`, or `$alt=json;enum-encoding=int` as Google's
generated REST clients send it): Google's streamed JSON array, over real HTTP, read whole (`json.loads`) and as it
arrives (an incremental parser as strict as google-api-core's: the body's first byte is `[`). Every element is the
`GenerateContentResponse` the SSE stream carries for the same request — from a Gemini target (asked for SSE and
re-framed, each event as it came) and translated from OpenAI and Anthropic targets. Failover before the first
element, keep-alives while the first token is awaited (whitespace inside the array), a break after it (an error
element closes the array), and refused query strings (a 400 in Google's error JSON, nothing sent upstream)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from sidestep.testing import RunningSim, running_gateway
from tests.e2e.test_native_providers import native_config

Sims = dict[str, RunningSim]
BODY = {"contents": [{"parts": [{"text": "hello there"}]}]}
TARGETS = {"openai": "primary/gpt-4o-mini", "anthropic": "backup/claude-sonnet-4-5", "gemini": "third/gemini-2.5-flash"}


class ArrayReader:
    """A streamed JSON array parsed as it arrives: each element handed over once whole. As strict as the REST
    clients' parsers: `[` first, elements separated by `,`, whitespace only between them, nothing after `]`."""

    def __init__(self) -> None:
        self.elements: list[Any] = []
        self.opened = self.closed = False
        self._buffer = ""
        self._decoder = json.JSONDecoder()

    def feed(self, text: str) -> None:
        self._buffer += text
        while self._buffer:
            if not self.opened:
                assert self._buffer[0] == "[", f"the body must open with '[': {self._buffer[:20]!r}"
                self.opened, self._buffer = True, self._buffer[1:]
                continue
            rest = self._buffer.lstrip(" \t\r\n")
            if not rest:
                return
            assert not self.closed, f"bytes after the closing ']': {rest[:40]!r}"
            if rest[0] == "]":
                self.closed, self._buffer = True, rest[1:]
                continue
            body = rest
            if self.elements:
                assert rest[0] == ",", f"elements must be separated by ',': {rest[:40]!r}"
                body = rest[1:].lstrip(" \t\r\n")
            try:
                element, end = self._decoder.raw_decode(body)
            except json.JSONDecodeError:
                self._buffer = rest  # not whole yet
                return
            self.elements.append(element)
            self._buffer = body[end:]


Streamed = tuple[httpx.Response, str, ArrayReader, list[int]]


async def stream_array(url: str, query: str = "", body: Any = BODY) -> Streamed:
    """POST a stream; the raw body, the incremental parse, and how many elements were whole after each chunk."""
    reader, counts, raw = ArrayReader(), [], []
    async with httpx.AsyncClient(timeout=20) as http, http.stream("POST", url + query, json=body) as response:
        async for chunk in response.aiter_text():
            raw.append(chunk)
            if response.status_code == 200:
                reader.feed(chunk)
                counts.append(len(reader.elements))
    return response, "".join(raw), reader, counts


def sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def without_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Elements less what differs per request (the response id the simulator draws)."""
    return [{k: v for k, v in item.items() if k != "responseId"} for item in items]


def text_of(elements: list[dict[str, Any]]) -> str:
    parts = [p for e in elements for p in e["candidates"][0].get("content", {}).get("parts", [])]
    return "".join(p.get("text", "") for p in parts)


def stream_url(gw: Any, model: str = "chat", version: str = "v1beta") -> str:
    return f"{gw.url}/{version}/models/{model}:streamGenerateContent"


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("query", ["", "?alt=json", "?%24alt=json%3Benum-encoding%3Dint"])
async def test_the_array_carries_what_the_sse_stream_carries(sims: Sims, target: str, query: str) -> None:
    async with running_gateway(native_config(sims, {"chat": [TARGETS[target]]})) as gw:
        response, raw, reader, _ = await stream_array(stream_url(gw), query)
        async with httpx.AsyncClient(timeout=20) as http:
            sse = await http.post(stream_url(gw) + "?alt=sse", json=BODY)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.headers["x-sidestep-provider"] == TARGETS[target].partition("/")[0]
    whole = json.loads(raw)
    assert raw.startswith("[{") and raw.endswith("}]") and reader.closed and reader.elements == whole
    assert sse.headers["content-type"] == "text/event-stream"
    assert without_ids(whole) == without_ids(sse_events(sse.text))  # element for event, field for field
    assert text_of(whole).startswith(f"Echo from {TARGETS[target].partition('/')[0]}: hello there")
    last = whole[-1]
    assert last["candidates"][0]["finishReason"] == "STOP" and last["usageMetadata"]["totalTokenCount"] > 0


async def test_a_gemini_target_is_asked_for_sse_and_its_events_pass_as_they_came(sims: Sims) -> None:
    """The Gemini target gets the client's body untouched and `alt=sse`; what it streamed comes back element for
    event, fields only Gemini has included (they would not survive the canonical model)."""
    async with running_gateway(native_config(sims, {"chat": [TARGETS["gemini"]]})) as gw:
        _, raw, reader, _ = await stream_array(stream_url(gw, version="v1"))
    sent = sims["third"].sim.received[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent" and sent.query == "alt=sse"
    assert sent.body == BODY
    whole = json.loads(raw)
    assert all("promptTokensDetails" in e["usageMetadata"] for e in whole)  # Gemini's own: relayed, not rebuilt
    assert len({e["responseId"] for e in whole}) == 1 and reader.elements == whole


async def test_elements_are_parsed_as_they_arrive(sims: Sims) -> None:
    sims["primary"].sim.set_fault("chunk_delay=0.05")
    sims["third"].sim.set_fault("chunk_delay=0.05")
    for target in ("openai", "gemini"):
        async with running_gateway(native_config(sims, {"chat": [TARGETS[target]]})) as gw:
            _, raw, reader, counts = await stream_array(stream_url(gw))
        assert reader.closed and reader.elements == json.loads(raw)
        # Whole elements came one after another, well before the last byte: a client reads them as they come.
        assert len(set(counts)) >= 4 and counts[0] < len(reader.elements), (target, counts)


async def test_failover_before_the_first_element_is_invisible(sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    route = {"chat": [TARGETS["openai"], TARGETS["gemini"]]}
    async with running_gateway(native_config(sims, route)) as gw:
        response, raw, reader, _ = await stream_array(stream_url(gw))
    assert response.status_code == 200 and response.headers["x-sidestep-provider"] == "third"
    assert response.headers["x-sidestep-attempts"] == "2"
    whole = json.loads(raw)
    assert reader.elements == whole and "error" not in json.dumps(whole)
    assert whole[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_every_target_failing_before_the_head_is_a_google_error_status(sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    async with running_gateway(native_config(sims, {"chat": [TARGETS["openai"]]})) as gw:
        response, raw, _, _ = await stream_array(stream_url(gw))
    assert response.status_code == 502  # as for a non-stream request: no head was committed
    error = json.loads(raw)["error"]
    assert error["code"] == 502 and error["status"] == "UNAVAILABLE" and "HTTP 503" in error["message"]


async def test_keepalives_while_waiting_are_whitespace_inside_the_array(sims: Sims) -> None:
    sims["primary"].sim.set_fault("latency=0.4")
    config = native_config(sims, {"chat": [TARGETS["openai"]]})
    config["server"] = {"sse_keepalive": 0.05}
    async with running_gateway(config) as gw:
        response, raw, reader, _ = await stream_array(stream_url(gw))
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    head = raw.partition("{")[0]
    assert head.startswith("[\r\n") and not head[1:].strip(), repr(head)  # `[` first, then only blank lines
    whole = json.loads(raw)
    assert reader.elements == whole and "Echo from primary" in json.dumps(whole) and raw.endswith("}]")


async def test_failing_after_keepalives_ends_the_array_with_the_error(sims: Sims) -> None:
    sims["primary"].sim.set_fault("latency=0.3,status=503")
    config = native_config(sims, {"chat": [TARGETS["openai"]]})
    config["server"] = {"sse_keepalive": 0.05}
    async with running_gateway(config) as gw:
        response, raw, reader, _ = await stream_array(stream_url(gw))
    assert response.status_code == 200  # committed by the keep-alives
    assert raw.startswith("[\r\n") and json.loads(raw) == reader.elements
    [error] = reader.elements
    assert error["error"]["code"] == 503 and error["error"]["status"] == "UNAVAILABLE"


@pytest.mark.parametrize("target", ["openai", "gemini"])
async def test_a_break_mid_stream_ends_the_array_with_an_error_element(sims: Sims, target: str) -> None:
    name = TARGETS[target].partition("/")[0]
    sims[name].sim.set_fault("drop_after=3")
    async with running_gateway(native_config(sims, {"chat": [TARGETS[target]]})) as gw:
        response, raw, reader, _ = await stream_array(stream_url(gw))
    assert response.status_code == 200
    whole = json.loads(raw)  # still one valid document
    assert reader.closed and reader.elements == whole
    *answer, error = whole
    assert answer and all("candidates" in e for e in answer)
    assert error["error"]["code"] == 503 and "mid-stream" in error["error"]["message"]


async def test_the_targets_own_error_event_is_the_last_element(sims: Sims) -> None:
    sims["third"].sim.set_fault("stream_error_after=2,message=the target gave up")
    async with running_gateway(native_config(sims, {"chat": [TARGETS["gemini"]]})) as gw:
        _, raw, reader, _ = await stream_array(stream_url(gw))
        sims["third"].sim.set_fault(None)
        healthy = await stream_array(stream_url(gw))
    whole = json.loads(raw)
    assert reader.elements == whole and [("error" in e) for e in whole] == [False, False, True]  # one error only
    assert whole[-1]["error"] == {"code": 503, "message": "the target gave up", "status": "UNAVAILABLE"}  # as sent
    assert json.loads(healthy[1])[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_mid_stream_continue_carries_on_in_the_same_array(sims: Sims) -> None:
    route = {"chat": {"fallback": ["primary/a@drop_after=3", TARGETS["gemini"]], "mid_stream": "continue"}}
    async with running_gateway(native_config(sims, route)) as gw:
        _, raw, reader, _ = await stream_array(stream_url(gw))
    whole = json.loads(raw)
    assert reader.elements == whole and "error" not in json.dumps(whole)
    text = text_of(whole)
    assert text.startswith("Echo from primary") and "Echo from third" in text


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("?alt=bogus", "'bogus'"),
        ("?alt=", "''"),
        ("?alt", "''"),
        ("?alt=SSE", "'SSE'"),
        ("?alt=proto", "'proto'"),
        ("?alt=media", "'media'"),
        ("?alt=sse&alt=json", "more than once"),
        ("?alt=sse&alt=sse", "more than once"),
        ("?alt=json&%24alt=json", "more than once"),
        ("?alt=sse%0d%0aX-Injected:%201", "X-Injected"),
        ("?alt=%00%ff%22%7D%5D", "\\x00"),
        ("?alt=" + "x" * 20_000, "…"),
        ("?alt=<script>alert(1)</script>", "<script>"),
    ],
)
async def test_a_refused_alt_is_a_google_400_and_nothing_goes_upstream(sims: Sims, query: str, why: str) -> None:
    config = native_config(sims, {"chat": [TARGETS["gemini"]]})
    async with running_gateway(config) as gw, httpx.AsyncClient(timeout=20) as http:
        response = await http.post(stream_url(gw) + query, json=BODY)
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT" and "alt" in error["message"]
    assert why in error["message"] and len(error["message"]) < 200  # a long value is cut, not echoed whole
    assert "x-injected" not in response.headers
    assert not sims["third"].sim.received


@pytest.mark.parametrize(
    "query",
    ["?key=k&alt=json", "?alt=json;anything", "?foo=%zz&alt=json&&", "?" + "&".join(f"p{i}=v" for i in range(2000))],
)
async def test_other_query_fields_leave_the_array_alone(sims: Sims, query: str) -> None:
    async with running_gateway(native_config(sims, {"chat": [TARGETS["openai"]]})) as gw:
        response, raw, reader, _ = await stream_array(stream_url(gw), query)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert reader.closed and reader.elements == json.loads(raw)


async def test_alt_sse_and_other_methods_are_unchanged(sims: Sims) -> None:
    config = native_config(sims, {"chat": [TARGETS["gemini"]]})
    async with running_gateway(config) as gw, httpx.AsyncClient(timeout=20) as http:
        sse = await http.post(stream_url(gw) + "?alt=sse", json=BODY)
        plain = await http.post(f"{gw.url}/v1beta/models/chat:generateContent?alt=json", json=BODY)
    assert sse.headers["content-type"] == "text/event-stream" and sse.text.startswith("data: {")
    assert sse.text.endswith("\r\n\r\n") and sse_events(sse.text)[-1]["candidates"][0]["finishReason"] == "STOP"
    assert plain.status_code == 200 and plain.json()["candidates"]


@pytest.mark.parametrize("target", ["openai", "gemini"])
async def test_a_cached_answer_is_replayed_as_the_array(sims: Sims, target: str) -> None:
    config = native_config(sims, {"chat": [TARGETS[target]]})
    config["cache"] = {}
    deterministic = {**BODY, "generationConfig": {"temperature": 0}}
    async with running_gateway(config) as gw, httpx.AsyncClient(timeout=20) as http:
        stored = await http.post(f"{gw.url}/v1beta/models/chat:generateContent", json=deterministic)
        response, raw, reader, _ = await stream_array(stream_url(gw), body=deterministic)
        sse = await http.post(stream_url(gw) + "?alt=sse", json=deterministic)
    assert stored.headers["x-sidestep-cache"] == "miss"
    assert response.headers["x-sidestep-cache"] == "hit" and response.headers["content-type"] == "application/json"
    whole = json.loads(raw)
    assert raw.startswith("[{") and raw.endswith("}]") and reader.elements == whole
    assert sse.headers["x-sidestep-cache"] == "hit" and sse.headers["content-type"] == "text/event-stream"
    assert whole == sse_events(sse.text)  # the same replay, framed for each
    assert text_of(whole) == text_of([stored.json()])
