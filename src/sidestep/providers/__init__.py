"""Provider adapters: per upstream API, the URL, auth and wire format of a request, and what its errors mean.

`catalog` lists every provider type as data (adding an OpenAI-compatible provider is one row), `registry`
builds adapters from the config, `base` holds what native adapters share. Adapters implement routing's seam
(`sidestep.routing.provider.Provider`); routing never imports them.
"""
