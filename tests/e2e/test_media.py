"""The relayed-only APIs over real HTTP with the official SDKs: moderations, images, audio transcriptions
(multipart, byte for byte) and speech (binary, streamed) with the `openai` SDK, rerank with the `cohere` SDK;
each fails over when its first target answers 503, skips targets whose API lacks the operation, and is priced
from what the answer reports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sidestep.testing import RunningSim, running_gateway
from tests.conftest import Sdk
from tests.sim_helpers import spent_by

Sims = dict[str, RunningSim]
AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 40


@pytest.fixture
async def co() -> AsyncIterator[Callable[[str], Any]]:
    """Make official Cohere SDK clients (v2) pointed at a gateway; their connections are closed after the test."""
    cohere = pytest.importorskip("cohere")
    made: list[httpx.AsyncClient] = []

    def make(url: str) -> Any:
        made.append(http := httpx.AsyncClient(timeout=20))
        return cohere.AsyncClientV2(base_url=url, api_key="client-key", httpx_client=http)

    yield make
    for http in made:
        await http.aclose()


def config(sims: Sims, route: list[str], **extra: Any) -> dict[str, Any]:
    """`down` (primary) and `up` (backup) speak OpenAI's API; `co` is Cohere; `rr` a vLLM reranker; `anth`
    Anthropic (serves none of these)."""
    port = lambda name: sims[name].port  # noqa: E731
    return {
        "providers": {
            "down": {"type": "openai", "base_url": sims["primary"].base_url, "api_key": "key-down"},
            "up": {"type": "openai", "base_url": sims["backup"].base_url, "api_key": "key-up"},
            "co": {"type": "cohere", "base_url": f"http://127.0.0.1:{port('third')}", "api_key": "key-co"},
            "rr": {"type": "vllm", "base_url": sims["third"].base_url, "api_key": "key-rr"},
            "anth": {"type": "anthropic", "base_url": f"http://127.0.0.1:{port('third')}", "api_key": "k"},
        },
        "routes": {"media": route},
        **extra,
    }


async def test_moderations_fail_over(sdk: Sdk, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    async with running_gateway(config(sims, ["down/omni-moderation-latest", "up/omni-moderation-latest"])) as gw:
        raw = await sdk(gw.base_url).moderations.with_raw_response.create(
            model="media", input=["I will kill the process", "hello"]
        )
    answer = raw.parse()
    assert raw.headers["x-sidestep-provider"] == "up" and raw.headers["x-sidestep-attempts"] == "2"
    assert [r.flagged for r in answer.results] == [True, False]
    assert answer.results[0].categories.violence is True and answer.id == "modr-backup"
    sent = sims["backup"].sim.received[-1]
    assert sent.path == "/v1/moderations" and sent.body == {
        "model": "omni-moderation-latest",
        "input": ["I will kill the process", "hello"],
    }


async def test_images_fail_over_and_skip_targets_without_images(sdk: Sdk, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    route = ["anth/claude", "down/gpt-image-1", "up/gpt-image-1"]
    async with running_gateway(config(sims, route)) as gw:
        raw = await sdk(gw.base_url).images.with_raw_response.generate(model="media", prompt="a lighthouse", n=2)
    images = raw.parse()
    assert raw.headers["x-sidestep-provider"] == "up" and raw.headers["x-sidestep-attempts"] == "3"
    assert [d.url for d in images.data or []] == [f"https://sim.invalid/backup/{i}.png" for i in range(2)]
    assert sims["third"].sim.received == []  # Anthropic was never asked for an image


async def test_transcription_multipart_passes_byte_for_byte(sdk: Sdk, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    async with running_gateway(config(sims, ["down/whisper-1", "up/whisper-1"])) as gw:
        client = sdk(gw.base_url)
        raw = await client.audio.transcriptions.with_raw_response.create(
            model="up/whisper-1", file=("clip.wav", AUDIO, "audio/wav"), language="en"
        )
        text = await client.audio.transcriptions.create(
            model="media", file=("clip.wav", AUDIO, "audio/wav"), response_format="text"
        )
    assert raw.headers["x-sidestep-provider"] == "up"
    assert raw.parse().text.startswith(f"transcript by backup: {len(AUDIO)} bytes")
    assert isinstance(text, str) and text.startswith("transcript by backup")
    first, second = sims["backup"].sim.received[-2:]
    # Same boundary, same bytes: the first request named the target's own model, so nothing changed.
    assert first.path == "/v1/audio/transcriptions" and AUDIO in first.raw
    assert first.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert first.raw.startswith(b"--" + first.headers["content-type"].split("boundary=")[1].encode())
    # The route name was replaced by the target's model, and nothing else.
    assert b'name="model"\r\n\r\nwhisper-1\r\n' in second.raw and b"media" not in second.raw


async def test_speech_streams_binary_audio_with_its_content_type(sdk: Sdk, sims: Sims) -> None:
    sims["primary"].sim.set_fault("status=503")
    async with running_gateway(config(sims, ["down/tts-1", "up/tts-1"])) as gw:
        client = sdk(gw.base_url)
        async with client.audio.speech.with_streaming_response.create(
            model="media", voice="alloy", input="Failover is invisible.", response_format="flac"
        ) as response:
            assert response.headers["content-type"] == "audio/flac"
            assert response.headers["x-sidestep-provider"] == "up"
            assert "content-length" not in response.headers  # streamed, not buffered
            pieces = [piece async for piece in response.iter_bytes()]
        whole = await client.audio.speech.create(model="media", voice="alloy", input="Failover is invisible.")
    audio = b"".join(pieces)
    assert audio.startswith(b"ID3") and len(audio) > 4096
    assert whole.content.startswith(b"ID3") and whole.response.headers["content-type"] == "audio/mpeg"


async def test_speech_cut_mid_stream_cuts_the_client(sims: Sims) -> None:
    """Audio has no error event: a break after the first bytes reaches the client as a truncated body."""
    sims["backup"].sim.set_fault("drop_after=2")
    async with running_gateway(config(sims, ["up/tts-1"])) as gw, httpx.AsyncClient() as client:
        body = {"model": "media", "voice": "alloy", "input": "x" * 200}
        async with client.stream("POST", gw.base_url + "/audio/speech", json=body) as response:
            assert response.status_code == 200
            with pytest.raises(httpx.HTTPError):
                await response.aread()


async def test_rerank_with_the_cohere_sdk(sims: Sims, co: Any) -> None:
    docs = ["failover keeps answers flowing", "bananas are yellow", "a gateway routes answers"]
    async with running_gateway(config(sims, ["co/rerank-v3.5"])) as gw:
        client = co(gw.url)
        answer = await client.rerank(model="media", query="gateway answers", documents=docs, top_n=2)
    assert [r.index for r in answer.results] == [2, 0] and answer.meta.billed_units.search_units == 1
    sent = sims["third"].sim.received[-1]
    assert sent.path == "/v2/rerank" and sent.body == {
        "model": "rerank-v3.5",
        "query": "gateway answers",
        "documents": docs,
        "top_n": 2,
    }


async def test_rerank_cohere_down_vllm_serves(sims: Sims, co: Any) -> None:
    config_ = config(sims, ["co/rerank-v3.5", "rr/bge-reranker"])
    config_["providers"]["co"]["base_url"] = f"http://127.0.0.1:{sims['primary'].port}"
    sims["primary"].sim.set_fault("status=503")
    async with running_gateway(config_) as gw:
        client = co(gw.url)
        raw = await client.with_raw_response.rerank(model="media", query="gateway answers", documents=["a", "gateway"])
    assert raw.headers["x-sidestep-provider"] == "rr"
    assert [r.index for r in raw.data.results] == [1, 0]
    assert sims["third"].sim.received[-1].path == "/v1/rerank"


async def test_no_target_serves_the_operation_is_a_400(sdk: Sdk, sims: Sims) -> None:
    async with running_gateway(config(sims, ["anth/claude", "co/command-a"])) as gw:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk(gw.base_url).images.generate(model="media", prompt="a cat")
    assert "No target of this route serves images" in caught.value.message
    assert "skipped: no images support" in caught.value.message


async def test_spend_is_priced_from_what_answers_report(sdk: Sdk, sims: Sims, tmp_path: Path) -> None:
    governance = {
        "keys": {"alice": {"key": "client-key", "budget_usd": 100}},
        "pricing": {
            "gpt-image-1": {"input": 10, "output": 40, "per_unit": 0.04},
            "whisper-1": {"per_unit": 0.0001},
            "tts-1": {"per_unit": 0.000015},
        },
    }
    log = tmp_path / "requests.jsonl"
    extra = {"governance": governance, "server": {"request_log": str(log)}}
    async with running_gateway(config(sims, ["up/gpt-image-1"], **extra)) as gw:
        client = sdk(gw.base_url)
        await client.images.generate(model="up/gpt-image-1", prompt="two words", n=3)
        images = spent_by(gw, "key:alice")
        await client.audio.transcriptions.create(model="up/whisper-1", file=("a.wav", AUDIO * 4, "audio/wav"))
        heard = spent_by(gw, "key:alice") - images
        await client.audio.speech.create(model="up/tts-1", voice="alloy", input="x" * 1000)
        spoken = spent_by(gw, "key:alice") - images - heard
    assert images == pytest.approx(3 * 0.04 + 2 * 10 / 1e6)  # three images, two prompt tokens
    assert heard == pytest.approx(max(1, len(AUDIO * 4) // 16000) * 0.0001)  # seconds reported
    assert spoken == pytest.approx(1000 * 0.000015)  # characters of input: speech reports nothing
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["operation"], r["usage"].get("units")) for r in records] == [
        ("images", 3.0),
        ("transcriptions", float(max(1, len(AUDIO * 4) // 16000))),
        ("speech", 1000.0),
    ]
    assert records[0]["cost_usd"] == pytest.approx(images)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/moderations", {"model": "media"}, "'input' is required"),
        ("/moderations", {"model": "media", "input": 7}, "'input' must be"),
        ("/images/generations", {"model": "media", "prompt": ""}, "'prompt' must be a non-empty string"),
        ("/images/generations", {"model": "media\r\nx-evil: 1", "prompt": "p"}, "not a valid model name"),
        ("/images/generations", {"model": "../../admin", "prompt": "p"}, "not a valid model name"),
        ("/images/generations", {"model": "media", "prompt": "p", "stream": "yes"}, "'stream' must be a boolean"),
        ("/audio/speech", {"model": "media", "input": "hi"}, "'voice' is required"),
        ("/audio/speech", {"input": "hi", "voice": "alloy"}, "'model' is required"),
        ("/audio/speech", [1, 2], "must be a JSON object"),
    ],
)
async def test_hostile_json_bodies_are_400s_in_openai_shape(sims: Sims, path: str, body: Any, message: str) -> None:
    async with running_gateway(config(sims, ["up/x"])) as gw, httpx.AsyncClient() as client:
        response = await client.post(gw.base_url + path, json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"] and response.json()["error"]["type"]
    assert sims["backup"].sim.received == []


async def test_json_cannot_pose_as_a_parsed_multipart_body(sims: Sims) -> None:
    """The parsed-multipart slot's key cannot be filled by JSON: such a field is relayed as the client's."""
    body = b'{"model": "media", "input": "hi", "voice": {"a": [[[[1]]]]}, "\\u0000multipart": {"raw": 1}}'
    async with running_gateway(config(sims, ["up/tts-1"])) as gw, httpx.AsyncClient() as client:
        response = await client.post(gw.base_url + "/audio/speech", content=body)
    assert response.status_code == 200 and response.content.startswith(b"ID3")
    assert sims["backup"].sim.received[-1].body["\x00multipart"] == {"raw": 1}


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"model": "media"}', "application/json", "must be multipart/form-data"),
        (
            b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nmedia\r\n',
            "multipart/form-data; boundary=b",
            "closing boundary",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nmedia\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            "'file' is required",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nxx\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            "'model' is required",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nxx\r\n--b\r\n'
            b'Content-Disposition: form-data; name="model"\r\n\r\nwhis\r\nper/../x\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            "not a valid model name",
        ),
        (
            b"--b\r\n" + b'Content-Disposition: form-data; name="f"\r\n\r\nx\r\n--b\r\n' * 70 + b"--b--\r\n",
            "multipart/form-data; boundary=b",
            "more than 64 parts",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nxx\r\n--b\r\n'
            b'Content-Disposition: form-data; name="model"\r\n\r\nm\r\n--b\r\n'
            b'Content-Disposition: form-data; name="stream"\r\n\r\nperhaps\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            "'stream' must be a boolean",
        ),
    ],
)
async def test_hostile_multipart_is_a_400(sims: Sims, body: bytes, content_type: str, message: str) -> None:
    async with running_gateway(config(sims, ["up/whisper-1"])) as gw, httpx.AsyncClient() as client:
        response = await client.post(
            gw.base_url + "/audio/transcriptions", content=body, headers={"content-type": content_type}
        )
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
    assert sims["backup"].sim.received == []


async def test_oversized_body_is_a_413_in_the_clients_shape(sims: Sims) -> None:
    extra = {"server": {"max_body_bytes": 4096}}
    async with running_gateway(config(sims, ["up/whisper-1"], **extra)) as gw, httpx.AsyncClient() as client:
        response = await client.post(
            gw.base_url + "/audio/transcriptions",
            files={"file": ("a.wav", AUDIO * 4, "audio/wav")},
            data={"model": "media"},
        )
        rerank = await client.post(gw.url + "/v2/rerank", json={"model": "m", "query": "q", "documents": ["x" * 5000]})
    assert response.status_code == 413 and "error" in response.json()
    assert rerank.status_code == 413 and "message" in rerank.json()


async def test_rerank_errors_come_in_cohere_shape(sims: Sims, co: Any) -> None:
    import cohere

    async with running_gateway(config(sims, ["co/rerank-v3.5"])) as gw, httpx.AsyncClient() as raw:
        client = co(gw.url)
        with pytest.raises(cohere.errors.BadRequestError) as caught:
            await client.rerank(model="media", query="", documents=["a"])
        assert caught.value.body == {"message": "'query' must be a non-empty string."}
        for body in (
            {"model": "media", "query": "q", "documents": []},
            {"model": "media", "query": "q"},
            {"model": "media", "query": "q", "documents": ["a"], "top_n": "2"},
            {"model": "media", "query": "q", "documents": ["a"], "top_n": 0},
        ):
            response = await raw.post(gw.url + "/v2/rerank", json=body)
            assert response.status_code == 400 and set(response.json()) == {"message"}, response.text
        sims["third"].sim.set_fault("status=503")
        with pytest.raises(cohere.core.api_error.ApiError) as failed:
            await client.rerank(model="media", query="q", documents=["a"])
        assert failed.value.status_code == 502 and "All 1 attempt(s) failed" in failed.value.body["message"]


class _Exchanges:
    """An observer that keeps (operation, status, provider, usage) of every finished exchange."""

    wants_usage = True

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str | None, Any]] = []

    def observe(self, exchange: Any) -> None:
        self.seen.append((exchange.operation, exchange.status, exchange.provider, exchange.usage))


async def test_observers_and_metrics_see_every_relayed_request(sdk: Sdk, sims: Sims, co: Any) -> None:
    sims["primary"].sim.set_fault("status=503")
    seen = _Exchanges()
    extra = {"server": {"metrics": True}}
    route = ["down/tts-1", "up/tts-1"]
    async with running_gateway(config(sims, route, **extra), observers=[seen]) as gw:
        client = sdk(gw.base_url)
        await client.audio.speech.create(model="media", voice="alloy", input="four")
        await client.moderations.create(model="up/omni-moderation-latest", input="hi")
        with pytest.raises(openai.BadRequestError):
            await client.moderations.create(model="media\nx", input="hi")
        await co(gw.url).rerank(model="co/rerank-v3.5", query="q", documents=["q"])
        async with httpx.AsyncClient() as raw:
            metrics = (await raw.get(gw.url + "/metrics")).text
    operations = [(op, status, provider) for op, status, provider, _ in seen.seen]
    assert operations == [
        ("speech", 200, "up"),
        ("moderations", 200, "up"),
        ("moderations", 400, ""),
        ("rerank", 200, "co"),
    ]
    assert seen.seen[0][3].units == 4 and seen.seen[3][3].units == 1  # characters spoken; search units
    assert 'endpoint="speech"' in metrics and 'endpoint="rerank"' in metrics


async def test_slow_audio_gets_no_keepalive_comments_and_no_continuation(sdk: Sdk, sims: Sims) -> None:
    """SSE keep-alive comments or a continued answer would corrupt audio: a slow first byte is waited for."""
    sims["backup"].sim.set_fault("latency=0.3")
    route = {"fallback": ["up/tts-1", "down/tts-1"], "mid_stream": "continue"}
    extra = {"server": {"sse_keepalive": 0.05}}
    async with running_gateway({**config(sims, []), "routes": {"media": route}, **extra}) as gw:
        speech = await sdk(gw.base_url).audio.speech.create(model="media", voice="alloy", input="slow")
    assert speech.content.startswith(b"ID3") and b"keep-alive" not in speech.content
    assert speech.response.headers["content-type"] == "audio/mpeg"


async def test_lacks_takes_a_target_out_of_an_operation(sims: Sims, co: Any) -> None:
    setup = config(sims, ["rr/no-reranker", "co/rerank-v3.5"])
    setup["providers"]["rr"]["lacks"] = ["rerank"]
    async with running_gateway(setup) as gw:
        raw = await co(gw.url).with_raw_response.rerank(model="media", query="q", documents=["q"])
    assert raw.headers["x-sidestep-provider"] == "co" and raw.headers["x-sidestep-attempts"] == "2"
    assert [r.path for r in sims["third"].sim.received] == ["/v2/rerank"]


async def test_with_the_cache_on_relayed_answers_are_kept_as_they_came_and_never_read(
    sdk: Sdk, sims: Sims, co: Any
) -> None:
    """A relayed-only API has no conversing side (`Endpoint.converses` None): with the cache on (a plugin that
    reads requests and keeps answers through the canonical model) a rerank is keyed on its body and its answer is
    given again byte for byte, never rewritten; speech's stream goes out as the upstream's bytes, never cached."""
    extra = {"cache": {"nondeterministic": True}}
    async with running_gateway(config(sims, ["co/rerank-v3.5"], **extra)) as gw:
        client = sdk(gw.base_url)
        answers = []
        async with httpx.AsyncClient(base_url=gw.url, headers={"authorization": "Bearer client-key"}) as http:
            for _ in range(2):
                raw = await http.post("/v2/rerank", json={"model": "media", "query": "q", "documents": ["a", "b"]})
                answers.append((raw.headers["x-sidestep-cache"], raw.headers["content-type"], raw.content))
        ranked = await co(gw.url).rerank(model="media", query="q", documents=["a", "b"])  # the SDK reads the hit
        assert len(ranked.results) == 2
        for _ in range(2):
            async with client.audio.speech.with_streaming_response.create(
                model="up/tts-1", voice="alloy", input="not cached"
            ) as response:
                assert response.headers["content-type"] == "audio/mpeg"
                assert "x-sidestep-cache" not in response.headers
                audio = b"".join([piece async for piece in response.iter_bytes()])
            assert audio.startswith(b"ID3")
    (first, kind, body), (second, kind_again, body_again) = answers
    assert (first, second) == ("miss", "hit") and body_again == body and kind == kind_again == "application/json"
    assert len([r for r in sims["third"].sim.received if r.path == "/v2/rerank"]) == 1  # the hit went nowhere
    assert len([r for r in sims["backup"].sim.received if r.path == "/v1/audio/speech"]) == 2
