"""Wire formats: each API's requests, answers and stream events ↔ the canonical model (`sidestep.core`).

A module per API (`openai_chat`, `anthropic_messages`, `gemini`, `bedrock`, `cohere`), plus what the client-facing
dialects (`openai`, `anthropic`) add — parsing a client's body, rendering errors in its shape — and the shared
framing (`sse`, `body`). Formats know neither providers nor routing; `sidestep.translate` joins two of them.
"""
