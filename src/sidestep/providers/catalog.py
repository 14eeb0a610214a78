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
    wire: str = "openai"  # the adapter that speaks its API
    url_style: str = "openai"  # "openai": {base}/chat/completions; "azure": deployments + api-version
    embeddings: bool = True
    completions: bool = False  # still serves the legacy `POST /completions` (OpenAI-compatible adapters only)
    # Speaks OpenAI's Responses API upstream (`POST /responses`): a Responses client is passed through, and only
    # such a provider can serve a request using OpenAI-hosted tools or `previous_response_id` (capability
    # `responses`, which every other provider lacks). OpenAI-compatible adapters only.
    responses: bool = False
    # Body fields the provider rejects; removed before sending (a 400 for an ignorable field is a bad failover).
    drop_fields: tuple[str, ...] = ()
    default_api_version: str | None = None
    lacks: tuple[str, ...] = ()  # capabilities no model of the provider has (a config's `lacks` replaces it)
    # Adapter-specific config keys (region, project, …) accepted under the provider; the adapter validates them.
    settings: tuple[str, ...] = ()
    secret_settings: tuple[str, ...] = ()  # those of `settings` held as `Secret` (never logged)


_ROWS = (
    ProviderSpec(
        "openai",
        "https://api.openai.com/v1",
        ("OPENAI_API_KEY",),
        url_env="OPENAI_BASE_URL",
        completions=True,
        responses=True,
    ),
    ProviderSpec(
        "anthropic",
        "https://api.anthropic.com",
        ("ANTHROPIC_API_KEY",),
        url_env="ANTHROPIC_BASE_URL",
        auth="x-api-key",
        wire="anthropic",
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
        completions=True,  # instruct deployments (gpt-35-turbo-instruct)
        responses=True,  # the v1 API: {endpoint}/openai/v1/responses, the deployment named in the body's model
        default_api_version="2024-10-21",
        key_required=False,  # an Entra ID token may replace the key (checked by the adapter factory)
        settings=("ad_token", "tenant_id", "client_id", "client_secret", "authority"),
        secret_settings=("ad_token", "client_secret"),
    ),
    ProviderSpec(
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        url_env="GEMINI_BASE_URL",
        auth="x-goog-api-key",
        wire="gemini",
        embeddings=False,
    ),
    ProviderSpec(
        "bedrock",
        "https://bedrock-runtime.us-east-1.amazonaws.com",  # the adapter picks the regional endpoint
        ("AWS_BEARER_TOKEN_BEDROCK",),
        url_env="BEDROCK_BASE_URL",
        key_required=False,  # SigV4 credentials may come from settings or the AWS environment
        wire="bedrock",
        embeddings=False,
        settings=("region", "access_key_id", "secret_access_key", "session_token"),
        secret_settings=("secret_access_key", "session_token"),
    ),
    ProviderSpec(
        "cohere",
        "https://api.cohere.com",
        ("COHERE_API_KEY", "CO_API_KEY"),
        url_env="COHERE_BASE_URL",
        wire="cohere",
        settings=("input_type",),  # /v2/embed's input_type (default search_document)
    ),
    ProviderSpec(
        "vertex",
        "https://us-central1-aiplatform.googleapis.com",  # the adapter picks the location's endpoint
        key_required=False,  # the credential is a service account / ADC, not a key
        wire="vertex",  # the adapter; it speaks Gemini's format
        embeddings=False,
        settings=("project", "location", "credentials"),
    ),
    ProviderSpec("groq", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",), drop_fields=("logit_bias",)),
    ProviderSpec("mistral", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",), drop_fields=("user",)),
    ProviderSpec(
        "together", "https://api.together.xyz/v1", ("TOGETHER_API_KEY", "TOGETHERAI_API_KEY"), completions=True
    ),
    ProviderSpec("fireworks", "https://api.fireworks.ai/inference/v1", ("FIREWORKS_API_KEY",), completions=True),
    ProviderSpec("deepseek", "https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",), embeddings=False),
    ProviderSpec("xai", "https://api.x.ai/v1", ("XAI_API_KEY",), embeddings=False, completions=True),
    ProviderSpec("cerebras", "https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",), embeddings=False, completions=True),
    ProviderSpec(
        "openrouter", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",), embeddings=False, completions=True
    ),
    ProviderSpec(
        "perplexity", "https://api.perplexity.ai", ("PERPLEXITY_API_KEY",), embeddings=False, lacks=("tools",)
    ),
    ProviderSpec("deepinfra", "https://api.deepinfra.com/v1/openai", ("DEEPINFRA_API_KEY",), completions=True),
    ProviderSpec(
        "ollama", "http://localhost:11434/v1", (), url_env="OLLAMA_BASE_URL", key_required=False, completions=True
    ),
    ProviderSpec(
        "vllm",
        "http://localhost:8000/v1",
        ("VLLM_API_KEY",),
        url_env="VLLM_BASE_URL",
        key_required=False,
        completions=True,
    ),
    ProviderSpec(
        "lmstudio", "http://localhost:1234/v1", (), url_env="LMSTUDIO_BASE_URL", key_required=False, completions=True
    ),
)

CATALOG: dict[str, ProviderSpec] = {row.name: row for row in _ROWS}
