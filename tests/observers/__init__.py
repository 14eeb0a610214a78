"""Unit tests of `sidestep.observers` (the access log; `/metrics` is checked end to end, `e2e/test_metrics.py`)."""
