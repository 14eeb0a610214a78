"""The relayed-only operations at the adapters: who serves what (the catalog's `serves`, kept true to the
docs' table), the upstream request each builds (a multipart body byte for byte but the model value), and
what an answer is charged."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sidestep.config.load import parse_config
from sidestep.errors import BadRequest, UpstreamError
from sidestep.formats.passthrough import OPENAI_SPEECH, OPENAI_TRANSCRIPTIONS, RERANK
from sidestep.providers.catalog import CATALOG
from sidestep.providers.registry import build_providers
from sidestep.providers.relayed import relayed_usage

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
OPERATIONS = ("rerank", "moderations", "images", "transcriptions", "speech")
FORM = (
    b'--B0undary\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n\x00\x01model\r\n'
    b'--B0undary\r\nContent-Disposition: form-data; name="model"\r\n\r\nroute-name\r\n--B0undary--\r\n'
)


def _providers() -> dict[str, object]:
    config = parse_config(
        {
            "providers": {
                "openai": {"api_key": "k"},
                "azure": {"base_url": "https://az.example", "api_key": "k"},
                "cohere": {"api_key": "k"},
                "anthropic": {"api_key": "k"},
                "vllm": {},
            }
        }
    )
    return dict(build_providers(config.providers))


def test_the_docs_table_says_what_the_catalog_serves() -> None:
    text = DOCS.read_text()
    for operation in OPERATIONS:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{operation}`"))
        documented = set(re.findall(r"`([a-z]+)`", row.split("|")[3]))
        served = {name for name, spec in CATALOG.items() if operation in spec.serves}
        assert documented == served, operation


def test_who_serves_what() -> None:
    providers = _providers()
    assert {op for op in OPERATIONS if providers["openai"].supports(op)} == {  # type: ignore[attr-defined]
        "moderations",
        "images",
        "transcriptions",
        "speech",
    }
    assert [op for op in OPERATIONS if providers["cohere"].supports(op)] == ["rerank"]  # type: ignore[attr-defined]
    assert [op for op in OPERATIONS if providers["vllm"].supports(op)] == ["rerank", "transcriptions"]  # type: ignore[attr-defined]
    assert not any(providers["anthropic"].supports(op) for op in OPERATIONS)  # type: ignore[attr-defined]


def test_multipart_goes_up_byte_for_byte_but_the_model_value() -> None:
    parsed = OPENAI_TRANSCRIPTIONS.parse_body(FORM, "transcriptions")
    assert parsed.models == ["route-name"] and parsed.stream is False
    key = parse_config({"providers": {"openai": {"api_key": "k"}}}).providers["openai"].keys[0]
    for name, url in (("openai", "https://api.openai.com/v1/audio/transcriptions"),):
        request = _providers()[name].build("transcriptions", "whisper-1", parsed.body, key, None)  # type: ignore[attr-defined]
        assert request.url == url
        assert request.body == FORM.replace(b"\r\n\r\nroute-name\r\n", b"\r\n\r\nwhisper-1\r\n")
        assert ("content-type", "multipart/form-data; boundary=B0undary") in request.headers


def test_azure_puts_the_deployment_in_the_path_and_cohere_reranks_at_v2() -> None:
    providers = _providers()
    key = parse_config({"providers": {"openai": {"api_key": "k"}}}).providers["openai"].keys[0]
    speech = OPENAI_SPEECH.parse_body(b'{"model": "tts", "input": "hi", "voice": "alloy"}', "speech")
    request = providers["azure"].build("speech", "my tts/1", speech.body, key, None)  # type: ignore[attr-defined]
    assert request.url.startswith("https://az.example/openai/deployments/my%20tts%2F1/audio/speech?api-version=")
    rerank = RERANK.parse_body(b'{"model": "r", "query": "q", "documents": ["a"], "fallbacks": ["x"]}', "rerank")
    request = providers["cohere"].build("rerank", "rerank-v3.5", rerank.body, key, None)  # type: ignore[attr-defined]
    assert request.url == "https://api.cohere.com/v2/rerank"
    assert request.body == b'{"model":"rerank-v3.5","query":"q","documents":["a"]}'  # gateway fields removed


@pytest.mark.parametrize(
    ("operation", "body", "tokens", "units"),
    [
        ("rerank", b'{"results": [], "meta": {"billed_units": {"search_units": 2}}}', (0, 0), 2.0),
        ("rerank", b'{"results": [{"index": 0}], "usage": {"total_tokens": 40}}', (40, 0), 0.0),
        ("images", b'{"data": [{}, {}], "usage": {"input_tokens": 5, "output_tokens": 9}}', (5, 9), 2.0),
        ("transcriptions", b'{"text": "hi", "usage": {"type": "duration", "seconds": 7}}', (0, 0), 7.0),
        (
            "transcriptions",
            b'{"text": "hi", "usage": {"type": "tokens", "input_tokens": 3, "output_tokens": 2}}',
            (3, 2),
            0.0,
        ),
        ("transcriptions", b"1\n00:00:00,000 --> 00:00:01,000\nhi\n", (0, 0), 0.0),
        ("moderations", b'{"results": [{"flagged": false}]}', (0, 0), 0.0),
    ],
)
def test_usage_read_from_answers(operation: str, body: bytes, tokens: tuple[int, int], units: float) -> None:
    usage = relayed_usage("p", operation, body)
    assert (usage.input, usage.output, usage.units) == (*tokens, units)


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("images", b'{"error": {"message": "busy"}}'),
        ("images", b'{"data": []}'),
        ("moderations", b"not json"),
        ("transcriptions", b"   "),
        ("rerank", b'{"id": "x"}'),
    ],
)
def test_a_200_without_its_answer_fails_over(operation: str, body: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        relayed_usage("p", operation, body)
    assert caught.value.status == 502 and caught.value.retryable


def test_serves_in_the_config_replaces_the_types_list() -> None:
    config = parse_config({"providers": {"tei": {"type": "vllm", "base_url": "http://tei/v1", "serves": ["images"]}}})
    tei = build_providers(config.providers)["tei"]
    assert [op for op in OPERATIONS if tei.supports(op)] == ["images"]  # not its type's rerank


@pytest.mark.parametrize("name", ["anthropic", "gemini", "cohere", "bedrock"])
def test_an_adapter_that_does_not_relay_an_api_refuses_its_request_rather_than_read_it(name: str) -> None:
    """A relayed-only API's request reaches an adapter with no conversing side (`source` None). Routing sends it
    only to adapters whose `supports` has the operation; one that has not refuses with a 400, never a translation."""
    config = parse_config(
        {
            "providers": {
                "anthropic": {"api_key": "k"},
                "gemini": {"api_key": "k"},
                "cohere": {"api_key": "k"},
                "bedrock": {"api_key": "k", "region": "us-east-1"},
            }
        }
    )
    provider = build_providers(config.providers)[name]
    assert not provider.supports("images")
    with pytest.raises(BadRequest, match="'images' requests cannot be served by") as refused:
        provider.build("images", "m", {"model": "m", "prompt": "a cat"}, config.providers[name].keys[0], None)
    assert refused.value.status == 400
