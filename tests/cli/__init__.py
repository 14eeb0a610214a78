"""Unit tests of `sidestep.cli`: the commands, their output and exit codes."""
