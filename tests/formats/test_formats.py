"""Formats are objects: the endpoint table names a client format per path, every format object has the
capabilities its role needs, and translation is one rule for every pair (no code per pair)."""

from __future__ import annotations

import pytest

from sidestep.core.format import Format
from sidestep.endpoints import ENDPOINTS, MODEL_PATHS, client_format
from sidestep.formats.anthropic_messages import ANTHROPIC_MESSAGES
from sidestep.formats.base import ClientFormat, ReadsEmbeddings, Seams, WritesEmbeddings
from sidestep.formats.bedrock_converse import BEDROCK_CONVERSE, BEDROCK_INVOKE
from sidestep.formats.cohere_v2 import COHERE_V2
from sidestep.formats.gemini import GEMINI
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.openai_completions import OPENAI_COMPLETIONS
from sidestep.formats.openai_responses import OPENAI_RESPONSES
from sidestep.formats.passthrough import (
    OPENAI_IMAGES,
    OPENAI_MODERATIONS,
    OPENAI_SPEECH,
    OPENAI_TRANSCRIPTIONS,
    RERANK,
)
from sidestep.formats.translate import to_canonical, translate_request

CONVERSING = (
    OPENAI_CHAT,
    ANTHROPIC_MESSAGES,
    OPENAI_RESPONSES,
    BEDROCK_CONVERSE,
    GEMINI,
)  # client formats with a system prompt
CLIENTS = (*CONVERSING, OPENAI_COMPLETIONS)
PROVIDERS = (OPENAI_CHAT, ANTHROPIC_MESSAGES, GEMINI, BEDROCK_CONVERSE, COHERE_V2, OPENAI_RESPONSES)
BODIES = {
    OPENAI_CHAT: {
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    },
    ANTHROPIC_MESSAGES: {
        "model": "m",
        "max_tokens": 9,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}],
    },
    OPENAI_RESPONSES: {"model": "m", "instructions": "be brief", "input": "hi"},
    GEMINI: {
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
    },
    OPENAI_COMPLETIONS: {"model": "m", "prompt": "hi"},
    BEDROCK_CONVERSE: {"system": [{"text": "be brief"}], "messages": [{"role": "user", "content": [{"text": "hi"}]}]},
}


def test_every_endpoint_names_a_client_format() -> None:
    relayed = {RERANK, OPENAI_MODERATIONS, OPENAI_IMAGES, OPENAI_TRANSCRIPTIONS, OPENAI_SPEECH, BEDROCK_INVOKE}
    formats = {e.format for e in ENDPOINTS.values()} | {row.endpoint.format for row in MODEL_PATHS}
    assert formats == {*CLIENTS, *relayed}
    assert all(isinstance(f, ClientFormat) for f in relayed)
    assert ENDPOINTS["/v1/messages"].format is ANTHROPIC_MESSAGES
    assert ENDPOINTS["/v1/chat/completions"].format is OPENAI_CHAT
    assert ENDPOINTS["/v1/responses"].format is OPENAI_RESPONSES
    assert ENDPOINTS["/v1/completions"].format is OPENAI_COMPLETIONS
    assert all(isinstance(f, ClientFormat) for f in CLIENTS)


def test_provider_only_formats_lack_what_clients_need_instead_of_stubbing_it() -> None:
    for fmt in (COHERE_V2,):
        assert isinstance(fmt, Format)
        assert not isinstance(fmt, ClientFormat)
        assert not hasattr(fmt, "parse_body")
    assert isinstance(COHERE_V2, ReadsEmbeddings) and not isinstance(BEDROCK_CONVERSE, ReadsEmbeddings)
    assert isinstance(OPENAI_CHAT, WritesEmbeddings) and not isinstance(ANTHROPIC_MESSAGES, WritesEmbeddings)
    assert isinstance(OPENAI_CHAT, Seams) and not isinstance(ANTHROPIC_MESSAGES, Seams)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/messages", ANTHROPIC_MESSAGES),
        ("/anthropic/v1/messages/count_tokens", ANTHROPIC_MESSAGES),
        ("/v1/messages/batches", ANTHROPIC_MESSAGES),  # under an Anthropic endpoint: its SDK reads the error
        ("/v1/chat/completions?x=1", OPENAI_CHAT),
        ("/v1/responses/resp_1", OPENAI_RESPONSES),  # a stored response asked for: a Responses error
        ("/v1/nothing", OPENAI_CHAT),
        ("/v1beta/models/gemini-2.5-flash:generateContent", GEMINI),
        ("/v1beta/models/smart:unknownMethod", GEMINI),  # an unknown method of the Gemini API: a Gemini error
        ("/v1/models/gpt-4o", OPENAI_CHAT),
        ("/model/route/converse-stream", BEDROCK_CONVERSE),
        ("/model/route/invoke-with-response-stream", BEDROCK_INVOKE),
        ("/model/route/bogus", BEDROCK_INVOKE),  # not served: a Bedrock error (InvokeModel's are Converse's)
        ("/model/", BEDROCK_INVOKE),
        ("", OPENAI_CHAT),
    ],
)
def test_errors_on_a_path_take_the_format_of_its_endpoint(path: str, expected: ClientFormat) -> None:
    assert client_format(path) is expected


@pytest.mark.parametrize("source", CLIENTS, ids=lambda f: f.name)
@pytest.mark.parametrize("target", PROVIDERS, ids=lambda f: f.name)
def test_any_client_format_translates_to_any_provider_format(source: ClientFormat, target: Format) -> None:
    body = BODIES[source]
    written = translate_request(dict(body), source, target)
    assert "hi" in str(written)
    if source is OPENAI_COMPLETIONS:  # a prompt: one user turn, no system text
        assert to_canonical(source, dict(body)).messages[0].text == "hi"
        return
    assert "be brief" in str(written)
    canonical = to_canonical(source, dict(body))
    assert canonical.system[0].text == "be brief"
    assert canonical.messages[0].parts[0].text == "hi"  # type: ignore[union-attr]
