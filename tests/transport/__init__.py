"""Unit tests of `sidestep.transport`: the upstream client against raw loopback servers."""
