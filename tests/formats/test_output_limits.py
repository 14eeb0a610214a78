"""Where each client format declares its answer's output limit (`ClientFormat.output_limit`), read from bodies as
the formats' own `parse_body` leaves them: the limit when it is a whole number from 1 to 2^31-1, None for anything
else — never an error, whatever the client sent (governance reserves budget by it on every request)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidestep.endpoints import ENDPOINTS, MODEL_PATHS
from sidestep.formats.anthropic_messages import ANTHROPIC_MESSAGES
from sidestep.formats.base import ClientFormat
from sidestep.formats.bedrock_converse import BEDROCK_CONVERSE, BEDROCK_INVOKE
from sidestep.formats.body import MAX_OUTPUT_LIMIT, decode_body, limit_of, output_limit
from sidestep.formats.cohere_v2 import COHERE_V2
from sidestep.formats.gemini import GEMINI
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.openai_completions import OPENAI_COMPLETIONS
from sidestep.formats.openai_responses import OPENAI_RESPONSES
from sidestep.formats.passthrough import OPENAI_IMAGES, OPENAI_SPEECH, RERANK

CHAT = [{"role": "user", "content": "hi"}]
CONVERSE = [{"role": "user", "content": [{"text": "hi"}]}]
CONTENTS = [{"role": "user", "parts": [{"text": "hi"}]}]

# (format, operation, a body without a limit, where the limit goes: a top-level name or "outer.inner")
PLACES: list[tuple[ClientFormat, str, dict[str, Any], str]] = [
    (OPENAI_CHAT, "chat", {"model": "m", "messages": CHAT}, "max_completion_tokens"),
    (OPENAI_CHAT, "chat", {"model": "m", "messages": CHAT}, "max_tokens"),
    (ANTHROPIC_MESSAGES, "messages", {"model": "m", "messages": CHAT}, "max_tokens"),
    (OPENAI_RESPONSES, "responses", {"model": "m", "input": "hi"}, "max_output_tokens"),
    (OPENAI_COMPLETIONS, "completions", {"model": "m", "prompt": "hi"}, "max_tokens"),
    (GEMINI, "chat", {"contents": CONTENTS}, "generationConfig.maxOutputTokens"),
    (BEDROCK_CONVERSE, "converse", {"messages": CONVERSE}, "inferenceConfig.maxTokens"),
    (BEDROCK_INVOKE, "invoke", {"anthropic_version": "bedrock-2023-05-31", "messages": CHAT}, "max_tokens"),
]
IDS = [f"{fmt.name}:{place}" for fmt, _, _, place in PLACES]
# Values no API takes as a limit: each falls back to the default reservation.
BAD = [0, -5, 1.5, 300.0, "300", True, False, None, [300], {"n": 300}, 2**31, 10**30, -(10**30), 1e308]


def with_limit(body: dict[str, Any], place: str, value: Any) -> dict[str, Any]:
    outer, _, inner = place.partition(".")
    return {**body, outer: {inner: value, "temperature": 0.5} if inner else value}


def parsed(fmt: ClientFormat, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    return fmt.parse_body(json.dumps(body).encode(), operation).body


@pytest.mark.parametrize(("fmt", "operation", "body", "place"), PLACES, ids=IDS)
def test_each_format_reads_the_limit_where_its_api_names_it(
    fmt: ClientFormat, operation: str, body: dict[str, Any], place: str
) -> None:
    if fmt is not ANTHROPIC_MESSAGES:  # Anthropic requires max_tokens
        assert fmt.output_limit(parsed(fmt, operation, body)) is None
    for value in (1, 300, MAX_OUTPUT_LIMIT):
        assert fmt.output_limit(parsed(fmt, operation, with_limit(body, place, value))) == value


@pytest.mark.parametrize(("fmt", "operation", "body", "place"), PLACES, ids=IDS)
@pytest.mark.parametrize("value", BAD, ids=repr)
def test_a_value_that_is_no_limit_reads_as_none(
    fmt: ClientFormat, operation: str, body: dict[str, Any], place: str, value: Any
) -> None:
    """Raw as the body was read (what a format's `parse_body` leaves undecoded) and decoded (what it checked)."""
    asked = with_limit(body, place, value)
    assert fmt.output_limit(decode_body(json.dumps(asked).encode())) is None
    assert fmt.output_limit(asked) is None


@pytest.mark.parametrize("fmt", [GEMINI, BEDROCK_CONVERSE], ids=lambda f: f.name)
@pytest.mark.parametrize("config", ["300", 300, [{"maxTokens": 300}], None, True])
def test_a_nested_limit_under_something_not_an_object_reads_as_none(fmt: ClientFormat, config: Any) -> None:
    outer = "generationConfig" if fmt is GEMINI else "inferenceConfig"
    assert fmt.output_limit({outer: config}) is None
    assert fmt.output_limit(decode_body(json.dumps({outer: config}).encode())) is None


def test_the_names_of_other_apis_are_not_read() -> None:
    """A limit under another API's name is not this API's limit (the upstream would ignore or refuse it)."""
    assert OPENAI_RESPONSES.output_limit({"max_tokens": 300}) is None
    assert GEMINI.output_limit({"maxOutputTokens": 300, "max_tokens": 300}) is None
    assert BEDROCK_CONVERSE.output_limit({"inferenceConfig": {"temperature": 0.2}, "max_tokens": 300}) is None
    assert OPENAI_CHAT.output_limit({"max_output_tokens": 300}) is None


def test_chat_reads_max_completion_tokens_first_and_max_tokens_when_it_is_no_limit() -> None:
    assert OPENAI_CHAT.output_limit(decode_body(b'{"max_completion_tokens":50,"max_tokens":900}')) == 50
    assert OPENAI_CHAT.output_limit(decode_body(b'{"max_completion_tokens":null,"max_tokens":900}')) == 900
    assert OPENAI_CHAT.output_limit(decode_body(b'{"max_completion_tokens":"x","max_tokens":-1}')) is None


def test_a_gemini_token_count_or_embedding_declares_no_limit() -> None:
    wrapped = {"generateContentRequest": {"contents": CONTENTS, "generationConfig": {"maxOutputTokens": 9}}}
    assert GEMINI.output_limit(parsed(GEMINI, "count_tokens", wrapped)) is None
    assert GEMINI.output_limit(parsed(GEMINI, "embeddings", {"content": {"parts": [{"text": "x"}]}})) is None


def test_relayed_only_apis_declare_no_limit() -> None:
    for fmt in (OPENAI_IMAGES, OPENAI_SPEECH, RERANK):
        assert fmt.output_limit({"max_tokens": 300}) is None


def test_every_client_format_says_where_its_limit_is_and_cohere_is_no_client_format() -> None:
    endpoints = [*ENDPOINTS.values(), *(row.endpoint for row in MODEL_PATHS)]
    assert all(callable(endpoint.format.output_limit) for endpoint in endpoints)
    assert not isinstance(COHERE_V2, ClientFormat)  # Cohere is a target only: no client sends its bodies


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@given(value=JSON)
def test_output_limit_never_raises_and_returns_only_a_limit(value: Any) -> None:
    raw = decode_body(json.dumps({"max_tokens": value, "generationConfig": value}).encode())
    for found in (output_limit(raw, "max_tokens"), limit_of(value), GEMINI.output_limit(raw)):
        assert found is None or (type(found) is int and 1 <= found <= MAX_OUTPUT_LIMIT)
        assert found is None or found == value
