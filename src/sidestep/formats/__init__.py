"""Wire formats as objects: one module (or package) per wire API, each exporting one format object.

A format object knows everything its API's bytes mean. Every format has a name and reads its streams into
canonical events (`base.Wire`); a format a provider speaks also writes requests and reads answers
(`base.Format`). A format clients speak to the gateway (`base.ClientFormat`) parses a client's body, renders
errors and in-stream errors, says when a relayed stream is complete and who the end user is — what every
client API does, the relayed-only ones (`passthrough`: rerank, moderations, images, audio; Bedrock's
InvokeModel) included. One that
converses through the canonical model (`base.Converses`: all but the relayed-only ones) also reads its clients'
requests, writes answers and streams back and reads its streams' usage; the endpoint table hands that side to
the route, typed, once per row (`sidestep.endpoints.Endpoint.converses`, None for a relayed-only API), so a
relayed-only format has no canonical method at all and mypy sees that none is called. Smaller abilities
(`base.Seams`, `base.ReadsEmbeddings`, `base.WritesEmbeddings`, `base.FramedStreams`, `base.NamesErrors` …)
are separate protocols; a format lacks what it does not have.

    openai_chat/          OPENAI_CHAT         client + provider (chat completions, embeddings answers)
    anthropic_messages/   ANTHROPIC_MESSAGES  client + provider
    openai_responses/     OPENAI_RESPONSES    client + provider (the catalog rows that serve `responses`)
    openai_completions    OPENAI_COMPLETIONS  client + provider (legacy completions: passed through only)
    gemini/               GEMINI              client (google-genai) + provider (AI Studio, Vertex AI)
                          GEMINI_ARRAY        client (`streamGenerateContent` without `alt=sse`: one JSON array)
    bedrock_converse/     BEDROCK_CONVERSE    client (boto3 bedrock-runtime; AWS event-stream frames) + provider
                          BEDROCK_INVOKE      client + provider, relayed only (InvokeModel: the model's own body)
    cohere_v2             COHERE_V2           provider (chat, embeddings)
    passthrough           RERANK, OPENAI_*    client + provider, relayed only (a `ClientFormat`, not `Converses`)

Code outside this package never compares format names: a provider adapter holds its format object, what was
served carries it (`Served.format`), and "same format" is identity (`served.format is client`), which keeps
same-format traffic on the byte-relay fast path. Different formats meet in `translate`:
`source.read → canonical (sidestep.core.model) → target.write`, with no code per pair.

Adding a wire API: one module here whose object implements `Format` (and `Converses` if clients speak it; a
relayed-only API is one more `PassThrough` object instead); a provider that speaks it is one adapter
(`sidestep.providers`) plus one catalog row; a client-facing API is one row in `sidestep.endpoints` (`_api` for
a format that converses, `_relayed` for a relayed-only one). Helpers every format shares: `body` (lazy JSON
bodies), `sse` (Server-Sent Events framing), `request` (model names, the parsed request).
"""
