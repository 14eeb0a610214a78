"""Unit tests of `sidestep.providers`: adapters and the catalog, without a gateway."""
