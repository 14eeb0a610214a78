"""Token estimates for when no count is at hand: about four characters a token.

Used where the provider's count is missing or not known yet — a budget's reservation for a request in
flight (from the size of its body), and the charge for a stream that ended without its usage (from the
text relayed). Four characters a token is OpenAI's and Anthropic's own rule of thumb for English; a
request body's JSON punctuation makes the prompt estimate err on the high side.
"""

from __future__ import annotations

from sidestep.core.model import Usage

__all__ = ["CHARS_PER_TOKEN", "relayed_usage", "tokens_of"]

CHARS_PER_TOKEN = 4


def tokens_of(chars: int) -> int:
    """Tokens in `chars` characters (or bytes), rounded up."""
    return -(-chars // CHARS_PER_TOKEN)


def relayed_usage(reported: Usage | None, prompt_bytes: int, answer_chars: int) -> Usage:
    """What a stream that ended without (complete) usage is charged: the prompt as reported, else estimated
    from the request body's size; the output as estimated from the answer relayed, or as reported if more
    (Anthropic reports output tokens as the stream goes)."""
    output = tokens_of(answer_chars)
    if reported is None:
        return Usage(input=tokens_of(prompt_bytes), output=output)
    return Usage(
        input=reported.input or tokens_of(prompt_bytes),
        output=max(reported.output, output),
        cached=reported.cached,
        cache_write=reported.cache_write,
        reasoning=reported.reasoning,
    )
