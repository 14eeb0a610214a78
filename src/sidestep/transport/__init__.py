"""The upstream HTTP client: the `Transport` seam (`types`), the pooled HTTP/1.1 client (`client`,
`connection`), proxy selection (`proxy`), and a transport built from a function for tests (`fake`).
"""
