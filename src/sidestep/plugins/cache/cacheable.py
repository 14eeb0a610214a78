"""What the cache keeps, in one table: (operation, client format) → how its requests are keyed (`Cacheable`), and
the operations it never keeps, with why (`NOT_CACHED`). Nothing else in the cache decides by operation.

Two ways to key a request:
- **canonical** (chat in OpenAI's, Anthropic's and the Responses API's formats): on the request read into the
  canonical model, so that the same conversation asked in any of these formats lands on the same entry (served
  to each in its own format). `raw` names the body fields the canonical model does not carry in full, which join
  the key as they are.
- **body**: on the body as sent (without the fields that do not change the answer) and the model, within the one
  format. For formats whose canonical reading leaves things out (Gemini's `generationConfig` beyond sampling,
  Converse's `additionalModelRequestFields`, content blocks it does not model), for answers that only their own
  format carries (completions, embeddings, token counts, rerank, moderations).

Whether an answer is a function of its request (`deterministic`) is read from the canonical request, or, for body
keys, from the fields `Sampling` names. A table test (`tests/plugins/test_cache_cacheable.py`) holds every
endpoint the gateway proxies to a decision here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidestep.formats.anthropic_messages import ANTHROPIC_MESSAGES
from sidestep.formats.base import ClientFormat
from sidestep.formats.bedrock_converse import BEDROCK_CONVERSE
from sidestep.formats.gemini import GEMINI, GEMINI_ARRAY
from sidestep.formats.openai_chat import OPENAI_CHAT
from sidestep.formats.openai_completions import OPENAI_COMPLETIONS
from sidestep.formats.openai_responses import OPENAI_RESPONSES
from sidestep.formats.passthrough import OPENAI_MODERATIONS, RERANK

__all__ = ["CACHED", "NOT_CACHED", "Cacheable", "Sampling"]

Path = tuple[str, ...]  # field names into the (decoded) body


@dataclass(frozen=True, slots=True)
class Sampling:
    """Where a body says how it samples; each a list of spellings (the first present counts)."""

    temperature: tuple[Path, ...]
    seed: tuple[Path, ...] = ()
    count: tuple[Path, ...] = ()  # how many answers it asks for (`n`, `candidateCount`)


@dataclass(frozen=True, slots=True)
class Cacheable:
    kind: str  # the key's namespace (no colon): entries are shared within one kind only
    canonical: bool = False  # keyed on the canonical request (shared across formats); else on the body, exactly
    sampling: Sampling | None = None  # body keys: where determinism is read; None: always deterministic
    raw: tuple[str, ...] = ()  # canonical keys: body fields the canonical model does not carry in full
    stateful: tuple[str, ...] = ()  # fields that, set (not null, not false), leave the request uncached
    readable: bool = False  # body keys: only requests the canonical model can read (a stream is rebuilt from it)
    conversation: tuple[str, ...] = ()  # body keys of chat: the fields the semantic index embeds (not its bucket)


_CONVERSATION = Cacheable("chat", canonical=True)
_GEMINI_CONFIG = (("generationConfig",), ("generation_config",))
_GEMINI = Sampling(
    temperature=tuple((*c, "temperature") for c in _GEMINI_CONFIG),
    seed=tuple((*c, "seed") for c in _GEMINI_CONFIG),
    count=(("generationConfig", "candidateCount"), ("generation_config", "candidate_count")),
)

_GEMINI_CHAT = Cacheable("chat", sampling=_GEMINI, conversation=("contents", "systemInstruction", "system_instruction"))

CACHED: dict[tuple[str, ClientFormat], Cacheable] = {
    ("chat", OPENAI_CHAT): _CONVERSATION,
    ("messages", ANTHROPIC_MESSAGES): _CONVERSATION,
    # Provider-side state (a stored or background response, a conversation) is never answered from the cache;
    # `include`, `text` (verbosity) and `reasoning` (summaries) change the answer beyond what the canonical
    # model carries of them.
    ("responses", OPENAI_RESPONSES): Cacheable(
        "chat",
        canonical=True,
        raw=("include", "text", "reasoning"),
        stateful=("previous_response_id", "conversation", "background", "store"),
    ),
    ("chat", GEMINI): _GEMINI_CHAT,
    ("chat", GEMINI_ARRAY): _GEMINI_CHAT,  # the same body and entries, streamed as one JSON array (no `alt=sse`)
    ("converse", BEDROCK_CONVERSE): Cacheable(
        "chat",
        sampling=Sampling(temperature=(("inferenceConfig", "temperature"),)),
        conversation=("messages", "system"),
    ),
    # The legacy completions: one prompt, without `logprobs` (a stream replayed from the answer carries neither
    # several prompts' choices nor log probabilities).
    ("completions", OPENAI_COMPLETIONS): Cacheable(
        "completions",
        sampling=Sampling(temperature=(("temperature",),), seed=(("seed",),), count=(("n",),)),
        stateful=("logprobs",),
        readable=True,
    ),
    # Deterministic JSON answers in the client's own format, keyed on the body.
    ("embeddings", OPENAI_CHAT): Cacheable("embeddings"),
    ("embeddings", GEMINI): Cacheable("embeddings"),
    ("count_tokens", ANTHROPIC_MESSAGES): Cacheable("count_tokens"),
    ("count_tokens", GEMINI): Cacheable("count_tokens"),
    ("rerank", RERANK): Cacheable("rerank"),
    ("moderations", OPENAI_MODERATIONS): Cacheable("moderations"),
}

NOT_CACHED: dict[str, str] = {
    "invoke": "Bedrock InvokeModel's body is the model's own: where it sets its sampling differs per model, so "
    "whether its answer is a function of the request cannot be read",
    "images": "a generated image is not a function of its prompt, and an answer's URLs expire within the hour",
    "transcriptions": "a multipart upload the gateway relays undecoded: keying it would hash the audio on every "
    "request, and its answers may be text, SRT or VTT as well as JSON",
    "speech": "binary audio, relayed as an opaque stream: the cache keeps JSON answers",
}
