"""The cache's table (`sidestep.plugins.cache.cacheable`): every endpoint the gateway proxies has a decision —
cached, and how, or not, and why — so a new endpoint row cannot slip past it; and what keys a request."""

from __future__ import annotations

from typing import Any

from sidestep.endpoints import ENDPOINTS, MODEL_PATHS
from sidestep.formats.base import Converses
from sidestep.formats.bedrock_converse import BEDROCK_CONVERSE
from sidestep.formats.gemini import GEMINI, GEMINI_ARRAY
from sidestep.formats.named import client_format_named
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.openai_responses import OPENAI_RESPONSES
from sidestep.formats.passthrough import RERANK
from sidestep.plugins.cache.cacheable import CACHED, NOT_CACHED
from sidestep.plugins.cache.key import request_key


def test_every_proxied_endpoint_is_cached_or_says_why_not() -> None:
    rows = [*ENDPOINTS.values(), *(row.endpoint for row in MODEL_PATHS)]
    proxied = {(e.operation, e.format) for e in rows if e.method == "POST"}
    # A row whose query picks the client format (Gemini's `alt`) may also be served in the array's.
    proxied |= {(e.operation, GEMINI_ARRAY) for e in rows if e.by_query is not None}
    undecided = [(op, f.name) for op, f in proxied if (op, f) not in CACHED and op not in NOT_CACHED]
    assert not undecided
    assert not {op for op, _ in CACHED} & set(NOT_CACHED)  # one decision per operation
    assert set(CACHED) <= proxied  # no row for an endpoint that does not exist
    for operation, client in CACHED:  # an entry names its format, which must be found again to be served
        # (the array's answers are Gemini's own: an entry stored for one is found again as `GEMINI`)
        assert client_format_named(client.name) is (GEMINI if client is GEMINI_ARRAY else client), operation
    assert all(":" not in rule.kind for rule in CACHED.values())  # a key is `kind:tenant:digest`
    # A rule that reads the request into the canonical model keys a format that converses (the route's
    # `Endpoint.converses`); a relayed-only API's requests are keyed on their body alone.
    for (operation, client), rule in CACHED.items():
        if rule.canonical or rule.readable or rule.conversation:
            assert isinstance(client, Converses), operation


def test_a_relayed_only_request_is_keyed_on_its_body_and_never_read() -> None:
    rerank = {"model": "r", "query": "q", "documents": ["a", "b"]}
    rule = CACHED[("rerank", RERANK)]
    keyed = request_key(rule, RERANK, None, rerank, "r")
    assert keyed is not None and keyed.deterministic and keyed.request is None
    assert key("rerank", RERANK, rerank, "r") == key("rerank", RERANK, {**rerank, "user": "u"}, "r") is not None
    assert key("rerank", RERANK, rerank, "r") != key("rerank", RERANK, {**rerank, "query": "p"}, "r")
    # A rule that would read it (none does: the table's test above) leaves it uncached rather than guess.
    assert request_key(CACHED[("chat", OPENAI_CHAT)], RERANK, None, rerank, "r") is None


def key(operation: str, client: Any, body: dict[str, Any], model: str = "m") -> str | None:
    converses = client if isinstance(client, Converses) else None  # what the route's endpoint row holds
    keyed = request_key(CACHED[(operation, client)], client, converses, body, model)
    return keyed.digest if keyed is not None and keyed.deterministic else None


def test_chat_in_openai_and_responses_shares_an_entry_unless_responses_says_more() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    responses = {"model": "m", "input": "hi", "temperature": 0}
    assert key("chat", OPENAI_CHAT, chat) == key("responses", OPENAI_RESPONSES, responses) is not None
    verbose = {**responses, "text": {"verbosity": "high"}}
    assert key("responses", OPENAI_RESPONSES, verbose) not in (None, key("responses", OPENAI_RESPONSES, responses))
    rule = CACHED[("responses", OPENAI_RESPONSES)]
    for state in ({"store": True}, {"background": True}, {"previous_response_id": "r"}, {"conversation": "c"}):
        assert request_key(rule, OPENAI_RESPONSES, OPENAI_RESPONSES, {**responses, **state}, "m") is None
    assert key("responses", OPENAI_RESPONSES, {**responses, "store": False}) == key(
        "responses", OPENAI_RESPONSES, responses
    )


def test_gemini_and_converse_keys_hold_the_path_model_and_their_whole_config() -> None:
    gemini = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"temperature": 0}}
    spelled = {"contents": gemini["contents"], "generation_config": {"temperature": 0, "seed": 1}}
    assert key("chat", GEMINI, gemini, "a") != key("chat", GEMINI, gemini, "b")
    assert key("chat", GEMINI, {**gemini, "stream": True}) == key("chat", GEMINI, gemini)  # the path's stream flag
    assert None not in (key("chat", GEMINI, spelled), key("chat", GEMINI, gemini))
    audio = {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "audio/wav", "data": "AA=="}}]}]}
    assert key("chat", GEMINI, {**audio, "generationConfig": {"temperature": 0}}) is not None  # no canonical form
    converse = {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"temperature": 0}}
    assert key("converse", BEDROCK_CONVERSE, converse, "a") != key("converse", BEDROCK_CONVERSE, converse, "b")
    guarded = {**converse, "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"}}
    assert key("converse", BEDROCK_CONVERSE, guarded) != key("converse", BEDROCK_CONVERSE, converse)
    assert key("chat", GEMINI, gemini) != key("converse", BEDROCK_CONVERSE, converse)
