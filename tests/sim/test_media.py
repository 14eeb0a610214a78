"""The simulator's relayed-only APIs: answers derived from the request, and faults chosen as for chat (the
`x-sim-fault` header, a `model@spec` suffix), a multipart transcription and streamed speech audio."""

from __future__ import annotations

import pytest

from sidestep.server.types import AbortConnection, Request, StreamingResponse
from sidestep.sim import Simulator
from tests.sim_helpers import collect, decode, post

KEY = {"authorization": "Bearer key"}


def _form(model: str, audio: bytes) -> Request:
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'
        + audio
        + b'\r\n--xyz\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
        + model.encode()
        + b"\r\n--xyz--\r\n"
    )
    headers = {**KEY, "content-type": "multipart/form-data; boundary=xyz"}
    return Request("POST", "/v1/audio/transcriptions", "", headers, body)


async def test_rerank_in_both_shapes_and_faults_by_header_and_suffix() -> None:
    sim = Simulator(name="s", api_keys=["key"])
    body = {"model": "r", "query": "red apple", "documents": ["green pear", "red apple pie"], "top_n": 1}
    cohere = decode(await sim.handle(post("/v2/rerank", body, KEY)))
    assert cohere["results"] == [{"index": 1, "relevance_score": 1.0}] and cohere["meta"]["billed_units"]
    vllm = decode(await sim.handle(post("/v1/rerank", body, KEY)))
    assert vllm["results"][0]["document"] == {"text": "red apple pie"} and vllm["usage"]["total_tokens"] > 0
    failed = await sim.handle(post("/v2/rerank", body, {**KEY, "x-sim-fault": "status=503"}))
    assert failed.status == 503 and "message" in decode(failed)  # Cohere's error shape
    suffixed = await sim.handle(post("/v1/moderations", {"model": "m@429", "input": "x"}, KEY))
    assert suffixed.status == 429 and decode(suffixed)["error"]["code"]


async def test_multipart_transcription_and_its_refusals() -> None:
    sim = Simulator(name="s", api_keys=["key"])
    answer = decode(await sim.handle(_form("whisper-1", b"\x00" * 32000)))
    assert answer["text"].startswith("transcript by s: 32000 bytes") and answer["usage"]["seconds"] == 2
    assert sim.received[-1].raw.startswith(b"--xyz\r\n")
    bad = Request("POST", "/v1/audio/transcriptions", "", {**KEY, "content-type": "application/json"}, b"{}")
    assert (await sim.handle(bad)).status == 400
    assert (await sim.handle(_form("whisper-1@503", b"x"))).status == 503


async def test_speech_streams_audio_and_drop_after_cuts_it() -> None:
    sim = Simulator(name="s", api_keys=["key"])
    body = {"model": "tts-1", "voice": "alloy", "input": "hello there, " * 4, "response_format": "opus"}
    response = await sim.handle(post("/v1/audio/speech", body, KEY))
    assert isinstance(response, StreamingResponse) and dict(response.headers)["content-type"] == "audio/ogg"
    audio = await collect(response)
    assert audio.startswith(b"ID3") and len(audio) > 4096
    cut = await sim.handle(post("/v1/audio/speech", body, {**KEY, "x-sim-fault": "drop_after=1"}))
    with pytest.raises(AbortConnection):
        await collect(cut)
