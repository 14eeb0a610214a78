"""Unit tests of `sidestep.config`: loading, validation, error messages."""
