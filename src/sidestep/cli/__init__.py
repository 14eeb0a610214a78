"""The `sidestep` command line (`main`): serve, check, and the sim, demo and drill subcommands; the top layer."""
