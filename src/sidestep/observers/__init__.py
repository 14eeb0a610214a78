"""Observers: what is told of every request once it is over (`sidestep.outcome.Exchange`).

The access log, the request log and the Prometheus metrics each read the one outcome record the gateway hands
them (`sidestep.outcome.tell`); none of them wraps the handler or parses response headers back. A tracing or
live-view observer is one more module here with an `observe(exchange)` method, built by
`sidestep.plugins.registry` from its config section.
"""
