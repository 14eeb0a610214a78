"""Build provider adapters from configuration: one line per wire API."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sidestep.config.model import ProviderConfig
from sidestep.errors import ConfigError
from sidestep.providers.anthropic import AnthropicProvider
from sidestep.providers.base import Provider
from sidestep.providers.catalog import CATALOG, ProviderSpec
from sidestep.providers.gemini import GeminiProvider
from sidestep.providers.openai_compat import OpenAICompatProvider

__all__ = ["ADAPTERS", "build_providers"]

ADAPTERS: Mapping[str, Callable[[ProviderConfig, ProviderSpec], Provider]] = {
    "openai": OpenAICompatProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
}


def build_providers(configs: Mapping[str, ProviderConfig]) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for name, config in configs.items():
        spec = CATALOG[config.type]
        factory = ADAPTERS.get(spec.wire)
        if factory is None:
            raise ConfigError(f"provider type '{config.type}' needs the '{spec.wire}' adapter, which is not installed")
        providers[name] = factory(config, spec)
    return providers
