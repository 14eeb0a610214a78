"""docs/conformance.md stays true: its table (client endpoint by target format) is parsed, and every cell is
checked against a running gateway with one route per target format on the simulator and one minimal request
per endpoint. How a cell was served is read from the outcome record the gateway hands its observers
(`Exchange.translated`, `Exchange.provider`); ineligible means a 400 before any upstream call.

A new endpoint is a row in the table plus one sample request in `SAMPLES` (and its name in `STREAMING` when
`"stream": true` in its body asks for a stream: each cell is then checked streamed too; in `PATH_STREAMS` when its
path says it streams). A path that names its model (`{model}`) gets the route's name there instead of the body."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidestep.outcome import Exchange
from sidestep.testing import RunningGateway, RunningSim, running_gateway, running_simulators

TABLE = Path(__file__).parents[2] / "docs" / "conformance.md"
# One minimal request body per endpoint (the route's name is added as `model`).
SAMPLES: dict[str, dict[str, Any]] = {
    "POST /v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}]},
    "POST /v1/embeddings": {"input": "hi"},
    "POST /v1/completions": {"prompt": "hi"},
    "POST /v1/responses": {"input": "hi"},
    "POST /v1/messages": {"max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
    "POST /v1/messages/count_tokens": {"messages": [{"role": "user", "content": "hi"}]},
    "POST /model/{model}/converse": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
    "POST /model/{model}/converse-stream": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
    "POST /v1/models/{model}:generateContent": {"contents": [{"parts": [{"text": "hi"}]}]},
    "POST /v1/models/{model}:streamGenerateContent?alt=sse": {"contents": [{"parts": [{"text": "hi"}]}]},
    "POST /v1/models/{model}:streamGenerateContent": {"contents": [{"parts": [{"text": "hi"}]}]},  # a JSON array
    "POST /v1/models/{model}:countTokens": {"contents": [{"parts": [{"text": "hi"}]}]},
    "POST /v1/models/{model}:embedContent": {"content": {"parts": [{"text": "hi"}]}},
    "POST /v1/models/{model}:batchEmbedContents": {"requests": [{"content": {"parts": [{"text": "hi"}]}}]},
    "POST /v1/rerank": {"query": "hi", "documents": ["hi", "there"]},
    "POST /v1/moderations": {"input": "hi"},
    "POST /v1/images/generations": {"prompt": "a cat"},
    "POST /v1/audio/speech": {"input": "hi", "voice": "alloy"},
    "POST /v1/audio/transcriptions": {},  # multipart: the form's fields and file are in `FORMS`
    "POST /model/{model}/invoke": {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
    },
    "POST /model/{model}/invoke-with-response-stream": {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
    },
}
STREAMING = {"POST /v1/chat/completions", "POST /v1/completions", "POST /v1/responses", "POST /v1/messages"}
FORMS = {"POST /v1/audio/transcriptions": {"file": ("hi.wav", b"RIFF\x00\x00\x00\x00WAVE", "audio/wav")}}
PATH_STREAMS = {  # streamed whatever the body says: the path asks for it, or the API always does (speech audio)
    "POST /model/{model}/converse-stream",
    "POST /model/{model}/invoke-with-response-stream",
    "POST /v1/models/{model}:streamGenerateContent?alt=sse",
    "POST /v1/models/{model}:streamGenerateContent",
    "POST /v1/audio/speech",
}
# One provider per target format (the column), all on one simulator, which speaks each by its paths.
TARGETS: dict[str, tuple[str, str, str]] = {  # column → (provider type, URL suffix, model)
    "openai": ("openai", "/v1", "gpt-sim"),  # speaks the Responses API too
    "openai-compatible": ("vllm", "/v1", "llama-sim"),  # Chat Completions only
    "anthropic": ("anthropic", "", "claude-sim"),
    "gemini": ("gemini", "/v1beta", "gemini-sim"),
    "bedrock": ("bedrock", "", "anthropic.claude-sim"),
    "cohere": ("cohere", "", "command-sim"),
}
HEADERS = {"authorization": "Bearer client-key", "anthropic-version": "2023-06-01"}


def read_table() -> tuple[list[str], dict[str, dict[str, str]]]:
    """The table between the markers: its columns (target formats) and, per endpoint, each column's cell."""
    text = TABLE.read_text()
    block = text.split("<!-- conformance-table", 1)[1].split("<!-- /conformance-table -->", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in block.splitlines()[1:]]
    rows = [row for row in rows if row and row[0] and not set(row[0]) <= {"-"}]
    header, *body = rows
    assert header[0] == "endpoint"
    return header[1:], {row[0].strip("`"): dict(zip(header[1:], row[1:], strict=True)) for row in body}


COLUMNS, CELLS = read_table()


class Outcomes:
    wants_usage = False

    def __init__(self) -> None:
        self.last: Exchange | None = None

    def observe(self, exchange: Exchange) -> None:
        self.last = exchange


@pytest.fixture
async def served() -> AsyncIterator[tuple[RunningGateway, RunningSim, Outcomes]]:
    outcomes = Outcomes()
    async with running_simulators("sim") as sims:
        sim = sims["sim"]
        providers = {
            f"{column}-target": {
                "type": kind,
                "base_url": f"http://127.0.0.1:{sim.port}{suffix}",
                "api_key": f"key-{column}",
            }
            for column, (kind, suffix, _) in TARGETS.items()
        }
        routes = {column: [f"{column}-target/{TARGETS[column][2]}"] for column in TARGETS}
        async with running_gateway({"providers": providers, "routes": routes}, observers=[outcomes]) as gw:
            yield gw, sim, outcomes


def test_the_table_covers_every_target_format_and_every_sample() -> None:
    assert list(TARGETS) == COLUMNS
    assert set(CELLS) == set(SAMPLES), "each row needs one sample request, each sample one row"
    assert set(SAMPLES) >= STREAMING | PATH_STREAMS
    for endpoint, cells in CELLS.items():
        assert re.fullmatch(r"(GET|POST) /\S+", endpoint)
        assert set(cells.values()) <= {"passthrough", "translated", "ineligible"}, endpoint


async def test_every_cell_holds(served: tuple[RunningGateway, RunningSim, Outcomes]) -> None:
    gw, sim, outcomes = served
    wrong: list[str] = []
    async with httpx.AsyncClient(timeout=20) as http:
        for endpoint, cells in CELLS.items():
            method, path = endpoint.split(" ", 1)
            for column, expected in cells.items():
                for stream in (False, True) if endpoint in STREAMING else (endpoint in PATH_STREAMS,):
                    before = len(sim.sim.received)
                    outcomes.last = None
                    named = {} if "{model}" in path else {"model": column}
                    body = {
                        **SAMPLES[endpoint],
                        **named,
                        **({"stream": True} if endpoint in STREAMING and stream else {}),
                    }
                    url = gw.url + path.replace("{model}", column)
                    if endpoint in FORMS:  # a multipart body: its fields as form data, beside the file
                        answer = await http.request(method, url, data=body, files=FORMS[endpoint], headers=HEADERS)
                    else:
                        answer = await http.request(method, url, json=body, headers=HEADERS)
                    got = _how(answer, outcomes.last, called=len(sim.sim.received) > before, column=column)
                    if outcomes.last is not None and got != "ineligible" and outcomes.last.streamed != stream:
                        got = f"streamed={outcomes.last.streamed}"
                    if got != expected:
                        mode = " (stream)" if stream else ""
                        wrong.append(f"{endpoint}{mode} on {column}: table says {expected}, gateway did {got}")
    assert not wrong, "\n".join(wrong)


def _how(answer: httpx.Response, exchange: Exchange | None, *, called: bool, column: str) -> str:
    if answer.status_code == 400 and not called:
        return "ineligible"
    if answer.status_code != 200 or exchange is None or exchange.provider != f"{column}-target":
        return f"HTTP {answer.status_code}: {answer.text[:300]}"
    return "translated" if exchange.translated else "passthrough"
