"""Build provider adapters from configuration: one line per adapter (`ProviderSpec.adapter` names it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sidestep.config.model import ProviderConfig
from sidestep.errors import ConfigError
from sidestep.providers.anthropic import AnthropicProvider
from sidestep.providers.azure_entra import openai_family
from sidestep.providers.bedrock import BedrockProvider
from sidestep.providers.catalog import CATALOG, ProviderSpec
from sidestep.providers.cohere import CohereProvider
from sidestep.providers.gemini import GeminiProvider
from sidestep.providers.vertex import VertexProvider
from sidestep.routing.provider import Provider

__all__ = ["ADAPTERS", "build_providers"]

ADAPTERS: Mapping[str, Callable[[ProviderConfig, ProviderSpec], Provider]] = {
    "openai": openai_family,  # OpenAI-compatible rows; Azure with Entra ID settings gets its token variant
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "bedrock": BedrockProvider,
    "cohere": CohereProvider,
    "vertex": VertexProvider,
}


def build_providers(configs: Mapping[str, ProviderConfig], *, source: str = "<config>") -> dict[str, Provider]:
    """One adapter per provider. An adapter rejects bad settings with `ConfigError(reason, path=...)`;
    the error is re-raised naming `source`, so it reads like every other config error."""
    providers: dict[str, Provider] = {}
    for name, config in configs.items():
        spec = CATALOG[config.type]
        factory = ADAPTERS.get(spec.adapter)
        if factory is None:
            reason = f"provider type '{config.type}' needs the '{spec.adapter}' adapter, which is not installed"
            raise ConfigError(reason, source=source, path=f"providers.{name}.type")
        try:
            providers[name] = factory(config, spec)
        except ConfigError as exc:
            raise ConfigError(exc.reason, source=source, path=exc.path or f"providers.{name}") from None
    return providers
