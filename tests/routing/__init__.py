"""Unit tests of `sidestep.routing`: plans, strategies, breakers, retries, cooldowns."""
