"""The cache plugin: answers served again without asking a provider (exact match; memory or Redis)."""

from sidestep.plugins.cache.plugin import Cache
from sidestep.plugins.cache.store import Entry, MemoryStore, Store

__all__ = ["Cache", "Entry", "MemoryStore", "Store"]
