"""Every provider type sidestep knows, as data rows.

An OpenAI-compatible provider is one `ProviderSpec` row: default base URL, how the key is sent, the
environment variables that register it when there is no config file, and its quirks. Adding one is
adding a row here (and a test); no other module changes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATALOG", "ProviderSpec"]


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    base_url: str
    key_env: tuple[str, ...] = ()  # first one set wins; registers the provider when there is no config
    url_env: str | None = None  # env var that overrides base_url (e.g. AZURE_OPENAI_ENDPOINT)
    auth: str = "bearer"  # "bearer" → Authorization: Bearer; "api-key" / "x-api-key" headers; "none"
    key_required: bool = True
    # Which adapter class serves it (`providers.registry.ADAPTERS`): "openai" for every OpenAI-compatible row.
    adapter: str = "openai"
    url_style: str = "openai"  # "openai": {base}/chat/completions; "azure": deployments + api-version
    embeddings: bool = True
    # Operations not every API of its kind has: the legacy `completions` (OpenAI's `POST /completions`) and the
    # relayed-only ones served in the client's own shape (`formats.passthrough`): `rerank` (Cohere's shape),
    # `moderations`, `images`, `transcriptions`, `speech` (OpenAI's). A target whose row lacks one is skipped for it.
    # `responses`: it speaks OpenAI's Responses API upstream (`POST /responses`), so a Responses client is passed
    # through; every other target has one translated, and lacks the capability `responses` that OpenAI-hosted
    # tools and `previous_response_id` need (OpenAI-compatible adapters only).
    serves: frozenset[str] = frozenset()
    # Body fields the provider rejects; removed before sending (a 400 for an ignorable field is a bad failover).
    drop_fields: tuple[str, ...] = ()
    default_api_version: str | None = None
    lacks: tuple[str, ...] = ()  # capabilities no model of the provider has (a config's `lacks` replaces it)
    # Adapter-specific config keys (region, project, …) accepted under the provider; the adapter validates them.
    settings: tuple[str, ...] = ()
    secret_settings: tuple[str, ...] = ()  # those of `settings` held as `Secret` (never logged)

    @property
    def openai_compatible(self) -> bool:
        """Served by the OpenAI-compatible adapter (the rows that take `drop_fields`, `url_style`, …)."""
        return self.adapter == "openai"


_COMPLETIONS = frozenset({"completions"})

_ROWS = (
    ProviderSpec(
        "openai",
        "https://api.openai.com/v1",
        ("OPENAI_API_KEY",),
        url_env="OPENAI_BASE_URL",
        serves=frozenset({"completions", "moderations", "images", "transcriptions", "speech", "responses"}),
    ),
    ProviderSpec(
        "anthropic",
        "https://api.anthropic.com",
        ("ANTHROPIC_API_KEY",),
        url_env="ANTHROPIC_BASE_URL",
        auth="x-api-key",
        adapter="anthropic",
        embeddings=False,
        default_api_version="2023-06-01",
    ),
    ProviderSpec(
        "azure",
        "",
        ("AZURE_OPENAI_API_KEY",),
        url_env="AZURE_OPENAI_ENDPOINT",
        auth="api-key",
        url_style="azure",
        default_api_version="2024-10-21",
        key_required=False,  # an Entra ID token may replace the key (checked by the adapter factory)
        # instruct, dall-e, whisper, tts; Responses through the v1 API ({endpoint}/openai/v1/responses)
        serves=frozenset({"completions", "images", "transcriptions", "speech", "responses"}),
        settings=("ad_token", "tenant_id", "client_id", "client_secret", "authority"),
        secret_settings=("ad_token", "client_secret"),
    ),
    ProviderSpec(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        url_env="GEMINI_BASE_URL",
        auth="x-goog-api-key",
        adapter="gemini",
        embeddings=False,
    ),
    ProviderSpec(
        "bedrock",
        "https://bedrock-runtime.us-east-1.amazonaws.com",  # the adapter picks the regional endpoint
        ("AWS_BEARER_TOKEN_BEDROCK",),
        url_env="BEDROCK_BASE_URL",
        key_required=False,  # SigV4 credentials may come from settings or the AWS environment
        adapter="bedrock",
        embeddings=False,
        settings=("region", "access_key_id", "secret_access_key", "session_token"),
        secret_settings=("secret_access_key", "session_token"),
    ),
    ProviderSpec(
        "cohere",
        "https://api.cohere.com",
        ("COHERE_API_KEY", "CO_API_KEY"),
        url_env="COHERE_BASE_URL",
        adapter="cohere",
        serves=frozenset({"rerank"}),  # /v2/rerank
        settings=("input_type",),  # /v2/embed's input_type (default search_document)
    ),
    ProviderSpec(
        "vertex",
        "https://us-central1-aiplatform.googleapis.com",  # the adapter picks the location's endpoint
        key_required=False,  # the credential is a service account / ADC, not a key
        adapter="vertex",  # speaks Gemini's format, with Google Cloud's auth and URLs
        embeddings=False,
        settings=("project", "location", "credentials"),
    ),
    ProviderSpec(
        "groq",
        "https://api.groq.com/openai/v1",
        ("GROQ_API_KEY",),
        drop_fields=("logit_bias",),
        serves=frozenset({"transcriptions", "speech"}),
    ),
    ProviderSpec("mistral", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",), drop_fields=("user",)),
    ProviderSpec(
        "together",
        "https://api.together.xyz/v1",
        ("TOGETHER_API_KEY", "TOGETHERAI_API_KEY"),
        serves=frozenset({"completions", "rerank", "images", "transcriptions", "speech"}),
    ),
    ProviderSpec("fireworks", "https://api.fireworks.ai/inference/v1", ("FIREWORKS_API_KEY",), serves=_COMPLETIONS),
    ProviderSpec("deepseek", "https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",), embeddings=False),
    ProviderSpec("xai", "https://api.x.ai/v1", ("XAI_API_KEY",), embeddings=False, serves=_COMPLETIONS),
    ProviderSpec(
        "cerebras", "https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",), embeddings=False, serves=_COMPLETIONS
    ),
    ProviderSpec(
        "openrouter", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",), embeddings=False, serves=_COMPLETIONS
    ),
    ProviderSpec(
        "perplexity", "https://api.perplexity.ai", ("PERPLEXITY_API_KEY",), embeddings=False, lacks=("tools",)
    ),
    ProviderSpec("deepinfra", "https://api.deepinfra.com/v1/openai", ("DEEPINFRA_API_KEY",), serves=_COMPLETIONS),
    ProviderSpec(
        "ollama", "http://localhost:11434/v1", (), url_env="OLLAMA_BASE_URL", key_required=False, serves=_COMPLETIONS
    ),
    ProviderSpec(
        "vllm",
        "http://localhost:8000/v1",
        ("VLLM_API_KEY",),
        url_env="VLLM_BASE_URL",
        key_required=False,
        serves=frozenset({"completions", "rerank", "transcriptions"}),  # /v1/rerank in Cohere's shape
    ),
    ProviderSpec(
        "jina",
        "https://api.jina.ai/v1",
        ("JINA_API_KEY",),
        serves=frozenset({"rerank"}),  # /v1/rerank in Cohere's shape; Voyage's rerank is another shape: not served
    ),
    ProviderSpec(
        "lmstudio", "http://localhost:1234/v1", (), url_env="LMSTUDIO_BASE_URL", key_required=False, serves=_COMPLETIONS
    ),
)

CATALOG: dict[str, ProviderSpec] = {row.name: row for row in _ROWS}
