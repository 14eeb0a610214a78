"""Routing: which target to try next, and the attempts themselves.

`plan` resolves a model name to a route tree and expands it (pure), `strategies` order load-balanced groups,
`executor` runs the attempts — retries (`retry`), circuit breakers (`breaker`), key cooldowns (`cooldown`),
deadlines — and is the only place that awaits a provider (through the `provider` seam). `served` is what a
successful attempt hands back. Routing sits below the formats and the providers.
"""
