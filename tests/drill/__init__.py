"""Unit tests of `sidestep.drill`: scenarios, verdicts, exit codes."""
