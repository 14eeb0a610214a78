"""Outage drills: replay a failure scenario against a config, with simulators in place of providers."""
