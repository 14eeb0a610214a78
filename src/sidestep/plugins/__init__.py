"""Plugins: the hooks around every proxied request (`base`: the contract and the pipeline), the optional
capabilities a plugin may have (`capabilities`: authenticate, filter models, serve endpoints, start and stop,
survive a reload, export metrics), where plugins and observers come from (`registry`: a config section → a
factory), and the plugins that ship with sidestep — governance (virtual keys, limits, budgets) and token
estimates. Plugins sit above providers and routing and below the app, which runs them; observers of the
finished request live in `sidestep.observers`.
"""
