"""Tests of the repository's machinery: import contracts, the compiled build, the benchmark and soak."""
