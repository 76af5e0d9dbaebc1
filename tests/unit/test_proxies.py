"""X-Forwarded-For is believed only from trusted proxies, and walked from the right."""

from __future__ import annotations

import pytest

from backend.api.proxies import TrustedProxies


def remote_addr(trusted: str, peer: str, forwarded: str | None) -> str:
    seen = {}

    def app(environ, start_response):
        seen["addr"] = environ["REMOTE_ADDR"]
        return []

    environ = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    TrustedProxies(app, trusted)(environ, lambda *a: None)
    return seen["addr"]


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "expected"),
    [
        # a client talking to us directly cannot choose its address
        ("127.0.0.1", "203.0.113.9", "198.51.100.1", "203.0.113.9"),
        # one trusted proxy: the address it saw
        ("127.0.0.1", "127.0.0.1", "198.51.100.1", "198.51.100.1"),
        # whatever the client wrote itself sits left of what our proxy appended
        ("127.0.0.1", "127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),
        # a chain of trusted proxies (network notation) is skipped
        ("10.0.0.0/8,127.0.0.1", "127.0.0.1", "6.6.6.6, 198.51.100.1, 10.1.2.3", "198.51.100.1"),
        # every hop trusted: the leftmost one
        ("10.0.0.0/8", "10.0.0.1", "10.0.0.2, 10.0.0.3", "10.0.0.2"),
        # garbage stops the walk at the last sane hop
        ("127.0.0.1", "127.0.0.1", "198.51.100.1, not-an-ip", "127.0.0.1"),
        # IPv6
        ("::1", "::1", "2001:db8::7", "2001:db8::7"),
        # "*" trusts every peer (gunicorn's meaning)
        ("*", "203.0.113.9", "198.51.100.1", "198.51.100.1"),
        # no header: nothing changes
        ("127.0.0.1", "127.0.0.1", None, "127.0.0.1"),
    ],
)
def test_client_address(trusted, peer, forwarded, expected):
    assert remote_addr(trusted, peer, forwarded) == expected


def test_the_proxy_address_is_kept_aside():
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        return []

    TrustedProxies(app, "127.0.0.1")(
        {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.1"}, lambda *a: None
    )
    assert seen["saas.proxy_addr"] == "127.0.0.1"
