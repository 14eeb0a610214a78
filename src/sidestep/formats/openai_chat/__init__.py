"""OpenAI's chat-completions wire format (and its embeddings answer), the format most providers speak.

- `format`: the `OPENAI_CHAT` object — parsing a client's body, errors, the end-of-stream rule (`[DONE]`),
  where a stream's usage is, and the entry to everything below;
- `convert`: requests and answers ↔ the canonical model (`sidestep.core.model`);
- `stream`: stream chunks ↔ canonical events, and the seam that stitches a same-format continuation;
- `wire`: the msgspec structs the readers decode into (interpreted: msgspec needs a struct's annotations).
"""

from sidestep.formats.openai_chat.format import OPENAI_CHAT, OpenAIChat

__all__ = ["OPENAI_CHAT", "OpenAIChat"]
