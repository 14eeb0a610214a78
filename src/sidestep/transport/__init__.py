"""The upstream HTTP client: the `Transport` seam and the narrow `UpstreamResponse` with its optional
capabilities (`types`), reading a body with the one read primitive (`body`), the pooled HTTP/1.1 client
(`client`, `connection`), proxy selection (`proxy`), and a transport built from a function for tests (`fake`).
"""
