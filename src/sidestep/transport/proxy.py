"""Which proxy, if any, a request goes through: `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` and `NO_PROXY`,
read once from the environment given at construction."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["ProxyConfig", "ProxyRoute"]


@dataclass(frozen=True, slots=True)
class ProxyRoute:
    host: str
    port: int
    authorization: str | None  # a ready `Proxy-Authorization` value, or None


def _env(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name.lower()) or env.get(name.upper()) or None


def _route(url: str | None) -> ProxyRoute | None:
    if not url:
        return None
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", ""):
        raise ValueError(f"unsupported proxy scheme {parts.scheme!r} (only http:// proxies are supported)")
    auth = None
    if parts.username is not None:
        raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = "Basic " + base64.b64encode(raw).decode("ascii")
    return ProxyRoute(parts.hostname or "", parts.port or 80, auth)


class ProxyConfig:
    def __init__(self, env: Mapping[str, str]) -> None:
        every = _env(env, "all_proxy")
        self.https = _route(_env(env, "https_proxy") or every)
        self.http = _route(_env(env, "http_proxy") or every)
        raw = _env(env, "no_proxy") or ""
        self.no_proxy = [item.strip().lower() for item in raw.split(",") if item.strip()]

    def for_target(self, scheme: str, host: str, port: int) -> ProxyRoute | None:
        route = self.https if scheme == "https" else self.http
        if route is None or self._bypass(host.lower(), port):
            return None
        return route

    def _bypass(self, host: str, port: int) -> bool:
        for entry in self.no_proxy:
            if entry == "*":
                return True
            name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            if entry_port and entry_port.isdigit() and int(entry_port) != port:
                continue
            name = name.lstrip(".")
            if host == name or host.endswith("." + name) or _in_network(host, name):
                return True
        return False


def _in_network(host: str, entry: str) -> bool:
    if "/" not in entry:
        return False
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
