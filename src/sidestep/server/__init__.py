"""The inbound HTTP/1.1 server on httptools, split as uvicorn splits its protocol: the listening server and
its limits (`protocol`), one client connection (`connection`), the request-response cycle that answers its
requests in order (`cycle`), their flow control (`flow_control`), lazily read request heads (`heads`) and the
handler seam (`types`: `Request` in, `Response` or `StreamingResponse` out).

It knows nothing of routing, formats or observers: the gateway is one handler behind `types.Handler`.
"""
