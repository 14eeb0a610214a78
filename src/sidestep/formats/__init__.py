"""Wire formats as objects: one module (or package) per wire API, each exporting one format object.

A format object knows everything its API's bytes mean: how to write a request and read an answer and a
stream (every format: `base.Format`), and — for the APIs clients speak to the gateway (`base.ClientFormat`) —
how to parse a client's body, read its request, write answers and streams back, render errors and in-stream
errors, when a relayed stream is complete and where its usage is. Smaller abilities (`base.Seams`,
`base.ReadsEmbeddings`, `base.WritesEmbeddings`, `base.FramedStreams`, `base.NamesErrors`) are separate
protocols; a format lacks what it does not have.

    openai_chat/          OPENAI_CHAT         client + provider (chat completions, embeddings answers)
    anthropic_messages/   ANTHROPIC_MESSAGES  client + provider
    openai_responses/     OPENAI_RESPONSES    client (always translated: no adapter speaks it yet)
    openai_completions    OPENAI_COMPLETIONS  client + provider (legacy completions: passed through only)
    gemini                GEMINI              provider (AI Studio, Vertex AI)
    bedrock_converse/     BEDROCK_CONVERSE    client (boto3 bedrock-runtime; AWS event-stream frames) + provider
    cohere_v2             COHERE_V2           provider (chat, embeddings)

Code outside this package never compares format names: a provider adapter holds its format object, what was
served carries it (`Served.format`), and "same format" is identity (`served.format is client`), which keeps
same-format traffic on the byte-relay fast path. Different formats meet in `translate`:
`source.read → canonical (sidestep.core.model) → target.write`, with no code per pair.

Adding a wire API: one module here whose object implements `Format` (and `ClientFormat` if clients speak
it); a provider that speaks it is one adapter (`sidestep.providers`) plus one catalog row; a client-facing
API is one row in `sidestep.endpoints`. Helpers every format shares: `body` (lazy JSON bodies), `sse`
(Server-Sent Events framing), `request` (model names, the parsed request).
"""
