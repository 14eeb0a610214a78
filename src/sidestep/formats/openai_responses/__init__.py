"""OpenAI's Responses API (`POST /v1/responses`) as a client format, and as a wire format providers speak:
passed through to the ones that speak it (OpenAI, Azure's v1 API), translated through the canonical model
for every other target.

- `format`: the `OPENAI_RESPONSES` object — parsing and validating a client's body (what only the Responses
  API carries — provider-stored state, OpenAI-hosted tools — makes it need the capability `responses`),
  errors, in-stream errors and end-of-stream marks in the Responses shape, the continuation body;
- `convert`: requests and answers ↔ the canonical model (`sidestep.core.model`);
- `stream`: canonical events → the Responses event sequence (`response.created` … `response.completed`), and
  a reader of that sequence;
- `wire`: the msgspec shapes an adapter checks a passed-through answer with (interpreted).
"""

from sidestep.formats.openai_responses.format import OPENAI_RESPONSES, OpenAIResponses

__all__ = ["OPENAI_RESPONSES", "OpenAIResponses"]
