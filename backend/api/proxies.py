"""The client's address behind reverse proxies, believed only from trusted ones.

gunicorn honours `X-Forwarded-Proto` from FORWARDED_ALLOW_IPS but never rewrites
REMOTE_ADDR, so behind a proxy every request would come from the proxy (one rate-limit bucket
for everybody). This middleware takes the client from `X-Forwarded-For`, walking it from the
right and skipping trusted proxies, and only when the direct peer is itself trusted: a client
that talks to us directly cannot choose its address. Unlike werkzeug's ProxyFix (which trusts
a hop count), trust is by address, with the same list gunicorn uses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted(spec: str) -> tuple[Network, ...] | None:
    """`"127.0.0.1,::1,10.0.0.0/8"` -> networks; `"*"` -> None (every peer trusted)."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if "*" in items:
        return None
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


class TrustedProxies:
    """WSGI middleware: sets REMOTE_ADDR to the first untrusted hop of X-Forwarded-For."""

    def __init__(self, wsgi_app: Callable, trusted: str) -> None:
        self.wsgi_app = wsgi_app
        self.networks = parse_trusted(trusted)

    def is_trusted(self, value: str | None) -> bool:
        if not value:  # a UNIX socket: only a local proxy can connect (gunicorn's rule too)
            return True
        if self.networks is None:
            return True
        address = _address(value)
        return address is not None and any(address in network for network in self.networks)

    def client_address(self, peer: str, forwarded: Iterable[str]) -> str:
        client = peer
        for hop in reversed([item.strip() for item in forwarded if item.strip()]):
            if _address(hop) is None:
                break  # garbage from a misconfigured hop: stop at the last sane address
            client = hop
            if not self.is_trusted(hop):
                break
        return client

    def __call__(self, environ: dict, start_response: Callable):
        peer = environ.get("REMOTE_ADDR", "")
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded and self.is_trusted(peer):
            environ["saas.proxy_addr"] = peer
            environ["REMOTE_ADDR"] = self.client_address(peer, forwarded.split(","))
        return self.wsgi_app(environ, start_response)
