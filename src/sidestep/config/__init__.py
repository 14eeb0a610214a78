"""Configuration: the validated model and its loaders."""

from sidestep.config.load import config_from_env, load_config, parse_config
from sidestep.config.model import Config, ProviderConfig, RouteNode, ServerConfig

__all__ = ["Config", "ProviderConfig", "RouteNode", "ServerConfig", "config_from_env", "load_config", "parse_config"]
