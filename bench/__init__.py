"""sidestep's benchmark: the gateway against direct-to-upstream, an nginx reverse proxy and (when installed)
LiteLLM, in one run, reported as ratios. `python -m bench.run --help`; results in docs/benchmarks.md."""
