"""Abuse limits on login, signup, verification and invitation acceptance: 429 rate_limited
with Retry-After, per IP and per account. Limits are tightened here on the live settings (the
suite runs with generous ones); each test uses its own client address."""

from __future__ import annotations

import itertools
import uuid

import pytest

from backend.core.config import RateLimits
from tests.integration.identity.conftest import PASSWORD, mark_verified, signup_body

_addresses = (f"10.9.{i // 250}.{i % 250 + 1}" for i in itertools.count())


@pytest.fixture()
def limits(runtime, monkeypatch):
    def tighten(**values: str) -> None:
        generous = {name: "10000 per minute" for name in RateLimits.model_fields}
        monkeypatch.setattr(
            runtime,
            "settings",
            runtime.settings.model_copy(update=dict(rate_limits=RateLimits(**generous | values))),
        )

    return tighten


def post(client, path: str, body: dict, address: str):
    return client.post(path, json=body, environ_base={"REMOTE_ADDR": address})


def assert_limited(response) -> None:
    assert response.status_code == 429
    assert response.json == {"detail": "rate_limited"}
    assert int(response.headers["Retry-After"]) > 0


def test_login_failures_are_limited_per_account_across_addresses(client, runtime, limits):
    limits(login_account="3 per minute")
    account = client.post("/api/v1/auth/signup", json=signup_body()).json
    mark_verified(runtime, uuid.UUID(account["user"]["id"]))
    email = account["user"]["email"]
    for _ in range(3):
        wrong = post(
            client, "/api/v1/auth/token", {"email": email, "password": "wrong-password!"}, next(_addresses)
        )
        assert wrong.status_code == 401
    # Locked for this account, even with the right password and from a fresh address.
    assert_limited(
        post(client, "/api/v1/auth/token", {"email": email, "password": PASSWORD}, next(_addresses))
    )
    other = post(
        client, "/api/v1/auth/token", {"email": "other@example.com", "password": "x" * 12}, next(_addresses)
    )
    assert other.status_code == 401


def test_successful_logins_do_not_use_the_account_budget(client, runtime, limits):
    limits(login_account="2 per minute")
    account = client.post("/api/v1/auth/signup", json=signup_body()).json
    for _ in range(4):
        response = post(
            client,
            "/api/v1/auth/token",
            {"email": account["user"]["email"], "password": PASSWORD},
            next(_addresses),
        )
        assert response.status_code == 200


def test_login_is_limited_per_address(client, limits):
    limits(login_ip="3 per minute")
    address = next(_addresses)
    for i in range(3):
        body = {"email": f"u{i}-{uuid.uuid4().hex[:6]}@example.com", "password": "whatever-pass"}
        assert post(client, "/api/v1/auth/token", body, address).status_code == 401
    assert_limited(
        post(client, "/api/v1/auth/token", {"email": "z@example.com", "password": "p" * 12}, address)
    )
    assert (
        post(
            client, "/api/v1/auth/token", {"email": "z@example.com", "password": "p" * 12}, next(_addresses)
        ).status_code
        == 401
    )


def test_signup_is_limited_per_address_and_per_email(client, limits):
    limits(signup_ip="2 per minute", signup_account="1 per minute")
    address = next(_addresses)
    assert post(client, "/api/v1/auth/signup", signup_body(), address).status_code == 201
    assert post(client, "/api/v1/auth/signup", signup_body(), address).status_code == 201
    assert_limited(post(client, "/api/v1/auth/signup", signup_body(), address))
    body = signup_body()
    assert post(client, "/api/v1/auth/signup", body, next(_addresses)).status_code == 201
    assert_limited(post(client, "/api/v1/auth/signup", body | {"workspace_slug": None}, next(_addresses)))


def test_verify_and_invitation_accept_are_limited(client, limits):
    limits(verify_ip="2 per minute", invitation_account="2 per minute")
    address = next(_addresses)
    for _ in range(2):
        assert post(client, "/api/v1/auth/verify", {"token": uuid.uuid4().hex}, address).status_code == 401
    assert_limited(post(client, "/api/v1/auth/verify", {"token": uuid.uuid4().hex}, address))
    token = uuid.uuid4().hex  # guessing one invitation token from many addresses
    for _ in range(2):
        body = {"token": token, "password": PASSWORD}
        assert post(client, "/api/v1/auth/invitations/accept", body, next(_addresses)).status_code == 401
    assert_limited(
        post(
            client,
            "/api/v1/auth/invitations/accept",
            {"token": token, "password": PASSWORD},
            next(_addresses),
        )
    )
