"""The inbound HTTP/1.1 server: the protocol on httptools (`protocol`, `heads`), the handler seam (`types`),
and the observers that wrap a handler (`access_log`, `metrics`).

It knows nothing of routing or formats: what metrics read of routing's state they name by shape.
"""
