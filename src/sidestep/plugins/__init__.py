"""Plugins: the hooks around every proxied request (`base`: the contract and the pipeline) and the plugins
that ship with sidestep — governance (virtual keys, limits, budgets), the request log, pricing and token
estimates. Plugins sit above providers and routing and below the app, which runs them.
"""
