"""sidestep: an LLM failover routing gateway.

Importing this package does no I/O and builds nothing: the server, config and providers are created
explicitly (`sidestep.serve.start_gateway`, `sidestep serve`).
"""

from sidestep.errors import AllAttemptsFailed, Attempt, ConfigError, SidestepError, UpstreamError

__version__ = "0.1.0"

__all__ = ["AllAttemptsFailed", "Attempt", "ConfigError", "SidestepError", "UpstreamError", "__version__"]
