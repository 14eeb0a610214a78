"""The OpenAI-compatible adapter and the Responses API: `routing.provider.speaks`, the one rule for the format
an attempt serves in (an operation's own format where the catalog row has one, the adapter's main format when
the model is configured as lacking it) on real adapters built from config (OpenAI speaks Responses, vLLM does
not, Azure on its v1 path), and `inspect` of a passed-through Responses answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sidestep.config.load import parse_config
from sidestep.config.model import KeyConfig
from sidestep.errors import UpstreamError
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.openai_completions import OPENAI_COMPLETIONS
from sidestep.formats.openai_responses import OPENAI_RESPONSES
from sidestep.providers.openai_compat import OpenAICompatProvider
from sidestep.providers.registry import build_providers
from sidestep.routing.provider import speaks


def _providers(**extra: Any) -> dict[str, OpenAICompatProvider]:
    raw = {
        "openai": {"type": "openai", "base_url": "http://up/v1", "api_key": "k", **extra},
        "vllm": {"type": "vllm", "base_url": "http://up/v1"},
        "azure": {"type": "azure", "base_url": "http://az", "api_key": "k"},
    }
    built = build_providers(parse_config({"providers": raw}, env={}).providers)
    return {name: p for name, p in built.items() if isinstance(p, OpenAICompatProvider)}


def test_each_operation_in_its_own_format_where_the_row_speaks_it() -> None:
    p = _providers()
    openai, vllm = p["openai"], p["vllm"]
    assert speaks(openai, openai.formats, "responses", "gpt") is OPENAI_RESPONSES
    assert speaks(openai, openai.formats, "completions", "gpt") is OPENAI_COMPLETIONS
    assert speaks(openai, openai.formats, "chat", "gpt") is OPENAI_CHAT
    assert speaks(vllm, vllm.formats, "responses", "llama") is OPENAI_CHAT
    assert vllm.config.lacks_for("llama") == {"responses"} and openai.config.lacks_for("gpt") == frozenset()


def test_a_model_lacking_responses_is_built_as_chat_completions() -> None:
    openai = _providers(lacks={"old-*": ["responses"]})["openai"]
    assert speaks(openai, openai.formats, "responses", "old-1") is OPENAI_CHAT
    assert speaks(openai, openai.formats, "responses", "new-1") is OPENAI_RESPONSES
    body = {"model": "r", "input": "hi"}
    old = openai.build("responses", "old-1", body, KeyConfig(None), OPENAI_RESPONSES)
    new = openai.build("responses", "new-1", body, KeyConfig(None), OPENAI_RESPONSES)
    assert old.url == "http://up/v1/chat/completions" and b'"messages"' in old.body
    assert new.url == "http://up/v1/responses" and new.body == b'{"model":"new-1","input":"hi"}'


def test_azure_sends_responses_to_its_v1_path_with_the_deployment_in_the_body() -> None:
    azure = _providers()["azure"]
    request = azure.build("responses", "my deploy/x", {"model": "r", "input": "hi"}, KeyConfig(None), OPENAI_RESPONSES)
    assert request.url == "http://az/openai/v1/responses" and b'"model":"my deploy/x"' in request.body
    chat = azure.build("chat", "dep", {"model": "r", "messages": []}, KeyConfig(None), OPENAI_CHAT)
    assert chat.url.startswith("http://az/openai/deployments/dep/chat/completions?api-version=")


def test_inspect_reads_a_responses_answer_and_refuses_one_without_an_answer() -> None:
    openai = _providers()["openai"]
    usage = {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}
    done = {"object": "response", "status": "completed", "output": [{"type": "message"}], "usage": usage}
    read = openai.inspect("responses", json.dumps(done).encode())
    assert read is not None and (read.input, read.output) == (3, 5)
    queued = {"object": "response", "status": "queued", "output": [], "usage": None}  # `background: true`
    assert openai.inspect("responses", json.dumps(queued).encode()) is None
    chat = {"object": "chat.completion", "choices": [{}], "usage": {"prompt_tokens": 2, "completion_tokens": 1}}
    assert openai.inspect("responses", json.dumps(chat).encode()).input == 2  # type: ignore[union-attr]
    for broken in (
        {**done, "output": []},
        {**done, "status": "failed", "error": {"message": "boom"}},
        {"error": {"message": "overloaded"}},
    ):
        with pytest.raises(UpstreamError) as failed:
            openai.inspect("responses", json.dumps(broken).encode())
        assert failed.value.status == 502 and failed.value.retryable
    with pytest.raises(UpstreamError, match="malformed responses body"):
        openai.inspect("responses", b'{"object": "response", "output": [')


def test_a_config_may_say_a_server_speaks_responses() -> None:
    raw = {"v": {"type": "vllm", "base_url": "http://up/v1", "serves": ["responses", "rerank"]}}
    config = parse_config({"providers": raw}, env={}).providers
    vllm = build_providers(config)["v"]
    assert isinstance(vllm, OpenAICompatProvider) and config["v"].never == frozenset()
    request = vllm.build("responses", "llama", {"model": "r", "input": "hi"}, KeyConfig(None), OPENAI_RESPONSES)
    assert request.url == "http://up/v1/responses" and vllm.supports("rerank")
