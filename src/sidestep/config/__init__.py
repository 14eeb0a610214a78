"""Configuration: the validated model every layer reads, and the loader that builds it.

`config.model` holds plain frozen values (providers, routes, policies, server and governance settings) and
imports nothing of the gateway: it sits in a low layer. `config.load` (with `config.fields` and
`config.governance`) reads a YAML file or the environment into that model and checks it against the provider
catalog and adapters, so it sits above the providers; import each from its module.
"""
