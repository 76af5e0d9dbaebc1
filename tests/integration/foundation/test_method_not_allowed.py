"""A method the resource does not have: 405 with the error body and the `Allow` header listing
the methods it has (RFC 9110 15.5.6), before any authentication (TD-005)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", "/api/v1/clients", {"GET", "POST"}),
        ("delete", "/api/v1/me", {"GET"}),
        ("post", "/health", {"GET"}),
        ("patch", "/api/v1/auth/token", {"POST"}),
    ],
)
def test_405_names_the_allowed_methods(client, method, path, allowed):
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response.json == {"detail": "method_not_allowed"}
    listed = {item.strip() for item in response.headers["Allow"].split(",")}
    assert allowed <= listed and method.upper() not in listed
