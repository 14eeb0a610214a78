"""nginx as the cheapest upstream (a fixed answer from memory) and as the reference reverse proxy.

The upstream answers `POST /v1/chat/completions` with a realistic OpenAI completion and `/s/v1/...` with
a whole SSE stream; both from `return`, so no file or upstream work is measured. Both carry the headers
OpenAI's API sends (rate-limit counters, ids, …), since parsing them is part of every proxy's work.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.payloads import UPSTREAM_HEADERS, completion_body, stream_body
from bench.procs import Proc, start, wait_http

__all__ = ["nginx_binary", "start_nginx_proxy", "start_nginx_upstream"]

_MAIN = """
worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{body}
}}
"""

_UPSTREAM = """
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
{headers}
        location = /v1/chat/completions {{ default_type application/json; return 200 '{completion}'; }}
        location = /s/v1/chat/completions {{ default_type text/event-stream; return 200 '{stream}'; }}
        location = /health {{ return 200 'ok'; }}
    }}
"""

_PROXY = """
    upstream backend {{ server 127.0.0.1:{upstream}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def _start(prefix: Path, name: str, body: str, port: int, cpus: list[int] | None) -> Proc:
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (Debian: apt-get install nginx-light)")
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(_MAIN.format(prefix=prefix, body=body))
    proc = start([binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")], name, cpus=cpus)
    wait_http(port, "/health" if "health" in body else "/", proc=proc)
    return proc


def start_nginx_upstream(workdir: Path, port: int, cpus: list[int] | None) -> Proc:
    headers = "\n".join(f"        add_header {name} '{value}' always;" for name, value in UPSTREAM_HEADERS)
    body = _UPSTREAM.format(
        port=port, headers=headers, completion=_quoted(completion_body()), stream=_quoted(stream_body(8))
    )
    return _start(workdir / "nginx-upstream", "nginx upstream", body, port, cpus)


def start_nginx_proxy(workdir: Path, port: int, upstream: int, cpus: list[int] | None) -> Proc:
    return _start(workdir / "nginx-proxy", "nginx proxy", _PROXY.format(port=port, upstream=upstream), port, cpus)


def _quoted(payload: bytes) -> str:
    text = payload.decode()
    if "'" in text or "$" in text:
        raise ValueError("payload must not contain ' or $ (nginx string)")
    return text.replace("\n", "\\n")
