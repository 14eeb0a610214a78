"""OpenAI's Responses API (`POST /v1/responses`) as a client format, served by any target through the
canonical model.

- `format`: the `OPENAI_RESPONSES` object — parsing and validating a client's body (stateful features and
  OpenAI-hosted tools are refused here, with a 400 naming them), errors in the Responses shape;
- `convert`: requests and answers ↔ the canonical model (`sidestep.core.model`);
- `stream`: canonical events → the Responses event sequence (`response.created` … `response.completed`), and
  a reader of that sequence.

No provider speaks this format yet: every request is translated (to Chat Completions, Anthropic Messages,
Gemini …), even for an OpenAI target that serves Responses natively; passing it through is a later step.
"""

from sidestep.formats.openai_responses.format import OPENAI_RESPONSES, OpenAIResponses

__all__ = ["OPENAI_RESPONSES", "OpenAIResponses"]
