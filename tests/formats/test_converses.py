"""Every client format does the common set (`ClientFormat`); the ones that converse through the canonical model also
have `Converses`, and the relayed-only ones (`formats.passthrough`, Bedrock's InvokeModel) have no canonical-model
method at all — not a stub. The endpoint table hands each route its format's conversing side, once per row (the
route's `paths.Proxied` carries it), and mypy refuses a relayed-only format wherever a conversing one is needed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sidestep.core.format import Format, Wire
from sidestep.endpoints import ENDPOINTS, MODEL_PATHS, Endpoint
from sidestep.formats.anthropic_messages import ANTHROPIC_MESSAGES
from sidestep.formats.base import ClientFormat, Converses, translatable
from sidestep.formats.bedrock_converse import BEDROCK_CONVERSE, BEDROCK_INVOKE
from sidestep.formats.cohere_v2 import COHERE_V2
from sidestep.formats.gemini import GEMINI, GEMINI_ARRAY
from sidestep.formats.named import client_format_named, format_named
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.openai_completions import OPENAI_COMPLETIONS
from sidestep.formats.openai_responses import OPENAI_RESPONSES
from sidestep.formats.passthrough import (
    OPENAI_IMAGES,
    OPENAI_MODERATIONS,
    OPENAI_SPEECH,
    OPENAI_TRANSCRIPTIONS,
    RERANK,
    PassThrough,
)
from sidestep.paths import Proxied

CONVERSING = (
    OPENAI_CHAT,
    ANTHROPIC_MESSAGES,
    OPENAI_RESPONSES,
    OPENAI_COMPLETIONS,
    GEMINI,
    GEMINI_ARRAY,
    BEDROCK_CONVERSE,
)
PASSED = (RERANK, OPENAI_MODERATIONS, OPENAI_IMAGES, OPENAI_TRANSCRIPTIONS, OPENAI_SPEECH)
RELAYED: tuple[ClientFormat, ...] = (*PASSED, BEDROCK_INVOKE)
CANONICAL = (
    "read_request",
    "write_request",
    "read_response",
    "write_response",
    "stream_writer",
    "include_usage",
    "asking_usage",
    "stream_usage",
)
ROOT = Path(__file__).resolve().parents[2]


def _rows() -> list[tuple[str, Endpoint]]:
    return [*ENDPOINTS.items(), *((row.prefix + "{model}" + row.suffix, row.endpoint) for row in MODEL_PATHS)]


@pytest.mark.parametrize("fmt", CONVERSING, ids=lambda f: f.name)
def test_a_conversing_client_format_has_both_sides(fmt: Converses) -> None:
    assert isinstance(fmt, ClientFormat) and isinstance(fmt, Converses) and isinstance(fmt, Format)
    assert translatable(fmt)


@pytest.mark.parametrize("fmt", RELAYED, ids=lambda f: f.name)
def test_a_relayed_only_format_has_the_common_set_and_no_canonical_method(fmt: ClientFormat) -> None:
    assert isinstance(fmt, ClientFormat) and isinstance(fmt, Wire)
    assert not isinstance(fmt, Converses) and not isinstance(fmt, Format)
    assert [name for name in CANONICAL if hasattr(fmt, name)] == []  # deleted, not stubbed
    assert not translatable(fmt)
    assert fmt.output_limit({"max_tokens": 5}) in (None, 5) and fmt.server_error_body(413, "too big").startswith(b"{")


@pytest.mark.parametrize("fmt", PASSED, ids=lambda f: f.name)
def test_a_passed_through_format_reads_its_bytes_opaquely(fmt: PassThrough) -> None:
    # What it does have works: its errors, its opaque stream reader, its end-of-stream rule.
    assert fmt.stream_reader().feed(b"\x00\x01")[0].kind == "text" and fmt.stream_reader().feed(b"") == []
    assert fmt.stream_complete(b"") is True and fmt.stream_error("cut") == b""
    assert fmt.server_error_body(413, "too big").startswith(b"{")


def test_translatable_agrees_with_the_protocol_for_every_format() -> None:
    for fmt in (*CONVERSING, *RELAYED, COHERE_V2):
        assert translatable(fmt) is isinstance(fmt, Format), fmt.name


def test_every_endpoint_row_holds_its_format_as_it_converses_or_none() -> None:
    for path, endpoint in _rows():
        if isinstance(endpoint.format, Converses):
            assert endpoint.converses is endpoint.format, path
        else:
            assert endpoint.converses is None and endpoint.format in RELAYED, path
        assert Proxied.of(endpoint).converses is endpoint.converses, path  # the route carries it
    relayed = {path for path, e in ENDPOINTS.items() if e.converses is None}
    assert relayed == {
        "/v1/rerank",
        "/rerank",
        "/v2/rerank",
        "/v1/moderations",
        "/moderations",
        "/v1/images/generations",
        "/images/generations",
        "/v1/audio/transcriptions",
        "/audio/transcriptions",
        "/v1/audio/speech",
        "/audio/speech",
    }

    invoked = {row.suffix for row in MODEL_PATHS if row.endpoint.converses is None}
    assert invoked == {"/invoke", "/invoke-with-response-stream"}
    assert all(row.endpoint.format is BEDROCK_INVOKE for row in MODEL_PATHS if row.endpoint.converses is None)


def test_the_query_pick_carries_its_own_conversing_side() -> None:
    (row,) = [row for row in MODEL_PATHS if row.endpoint.by_query is not None and row.prefix == "/v1beta/models/"]
    picked = Proxied.of(row.endpoint, "m", GEMINI_ARRAY)
    assert picked.client is picked.converses is GEMINI_ARRAY and picked.media is not None and not picked.opaque
    assert Proxied.of(row.endpoint, "m", GEMINI).converses is GEMINI  # the row's own format: the row as it is


def test_cached_answers_name_client_formats_and_only_conversing_ones_are_rewritten() -> None:
    assert client_format_named(OPENAI_CHAT.name) is OPENAI_CHAT
    assert client_format_named(COHERE_V2.name) is None and format_named(COHERE_V2.name) is COHERE_V2
    assert client_format_named(RERANK.name) is RERANK and not translatable(RERANK)  # kept, served as stored
    assert format_named(RERANK.name) is None and client_format_named("nope") is None


# What mypy must refuse: a relayed-only format where the canonical model is read or written. Each line is its own
# error; a line mypy accepted would mean a relayed-only format could reach a canonical call again.
_REFUSED = {
    "translate_request(body, RERANK, OPENAI_CHAT)": "arg-type",
    "translate_response(b'', OPENAI_CHAT, OPENAI_SPEECH)": "arg-type",
    "to_canonical(OPENAI_IMAGES, body)": "arg-type",
    "collected_response(OPENAI_MODERATIONS, [], None)": "arg-type",
    "_api('rerank', RERANK)": "arg-type",
    "Endpoint('speech', OPENAI_SPEECH, OPENAI_SPEECH)": "arg-type",
    "_api('invoke', BEDROCK_INVOKE)": "arg-type",
    "BEDROCK_INVOKE.read_request(body)": "attr-defined",
    "Proxied.of(ENDPOINTS['/v1/chat/completions'], None, BEDROCK_INVOKE)": "arg-type",
    "served.format.read_response(b'')": "attr-defined",
    "OPENAI_TRANSCRIPTIONS.stream_writer('m', False)": "attr-defined",
}
_ACCEPTED = (
    "translate_request(body, ANTHROPIC_MESSAGES, OPENAI_CHAT)",
    "_api('chat', OPENAI_CHAT)",
    "_relayed('rerank', RERANK)",
    "_relayed('invoke', BEDROCK_INVOKE, True)",
    "translate_response(b'', served.format, OPENAI_CHAT) if translatable(served.format) else None",
)


def test_mypy_refuses_a_relayed_only_format_where_the_canonical_model_is_needed(tmp_path: Path) -> None:
    lines = [*_REFUSED, *_ACCEPTED]
    source = textwrap.dedent(
        """\
        from typing import Any
        from sidestep.endpoints import ENDPOINTS, Endpoint, _api, _relayed
        from sidestep.formats.anthropic_messages import ANTHROPIC_MESSAGES
        from sidestep.formats.bedrock_converse import BEDROCK_INVOKE
        from sidestep.formats.base import translatable
        from sidestep.formats.openai_chat import OPENAI_CHAT
        from sidestep.formats.passthrough import (
            OPENAI_IMAGES, OPENAI_MODERATIONS, OPENAI_SPEECH, OPENAI_TRANSCRIPTIONS, RERANK,
        )
        from sidestep.formats.translate import collected_response, to_canonical, translate_request, translate_response
        from sidestep.paths import Proxied
        from sidestep.routing.served import Served


        def check(body: dict[str, Any], served: Served) -> None:
        """
    )
    source += "".join(f"    {line}\n" for line in lines)
    module = tmp_path / "relayed_typing.py"
    module.write_text(source)
    run = subprocess.run(
        # A cache of its own: the shared one may hold a module of this name from another run, path and all.
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "c"),
            str(module),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    first = source.count("\n", 0, source.index(lines[0])) + 1  # the line number of the first checked line
    flagged = {int(line.split(":")[1]) - first: line for line in errors}
    for index, (line, code) in enumerate(_REFUSED.items()):
        assert index in flagged and f"[{code}]" in flagged[index], (line, run.stdout)
    assert not any(len(_REFUSED) <= index for index in flagged), run.stdout
