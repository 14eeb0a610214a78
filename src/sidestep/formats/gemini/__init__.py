"""Google Gemini's `generateContent` wire format: a provider format (AI Studio, Vertex AI) and a client format
(google-genai pointed at sidestep).

- `format`: the `GEMINI` object — parsing a client's body by Gemini's rules, Google's error shape, the
  end-of-stream rule, usage, embeddings and token counts;
- `convert`: provider side — canonical requests written for a Gemini target, its answers read back;
- `client`: client side — a Gemini client's request read into the canonical model, answers written for it;
- `stream`: stream events ↔ canonical events (reader for targets, writer for clients);
- `array`: `GEMINI_ARRAY`, the client format of a stream asked without `alt=sse` (one JSON array), picked per
  request from the query string (`stream_format`);
- `errors`: `{"error": {"code", "message", "status"}}`.
"""

from sidestep.formats.gemini.array import GEMINI_ARRAY, GeminiArray, stream_format
from sidestep.formats.gemini.convert import blocked_reason, read_response, write_request
from sidestep.formats.gemini.format import GEMINI, Gemini
from sidestep.formats.gemini.stream import StreamReader

# The client formats whose requests are a Gemini body (they differ in how a stream is framed): a Gemini target
# gets it as the client wrote it.
GEMINI_BODIES = (GEMINI, GEMINI_ARRAY)

__all__ = [
    "GEMINI",
    "GEMINI_ARRAY",
    "GEMINI_BODIES",
    "Gemini",
    "GeminiArray",
    "StreamReader",
    "blocked_reason",
    "read_response",
    "stream_format",
    "write_request",
]
