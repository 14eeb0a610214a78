"""Unit tests of `sidestep.sim`: the provider simulator on its own."""
