"""Governance: virtual keys, model allow-lists, rate limits and budgets per key, team and customer."""

from sidestep.plugins.governance.plugin import Governance

__all__ = ["Governance"]
