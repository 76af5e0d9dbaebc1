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


def post(client, path: str, body: dict, address: str):
    return client.post(path, json=body, environ_base={"REMOTE_ADDR": address})


def assert_limited(response) -> None:
    assert response.status_code == 429
    assert response.json == {"detail": "rate_limited"}
    assert int(response.headers["Retry-After"]) > 0


def login(client, email: str, password: str, address: str):
    return post(client, "/api/v1/auth/token", {"email": email, "password": password}, address)


def verified_owner(client, runtime) -> str:
    account = client.post("/api/v1/auth/signup", json=signup_body()).json
    mark_verified(runtime, uuid.UUID(account["user"]["id"]))
    return account["user"]["email"]


def test_login_failures_are_limited_per_account_and_address(client, runtime, limits):
    limits(login_account="3 per minute")
    email = verified_owner(client, runtime)
    attacker = next(_addresses)
    for _ in range(3):
        assert login(client, email, "wrong-password!", attacker).status_code == 401
    # This address is done with this account, even with the right password ...
    assert_limited(login(client, email, PASSWORD, attacker))
    # ... but not with other accounts, and the account is not locked for other addresses.
    assert login(client, "other@example.com", "x" * 12, attacker).status_code == 401
    assert login(client, email, PASSWORD, next(_addresses)).status_code == 200


def test_twenty_failures_from_one_address_do_not_stop_the_owner(client, runtime, limits):
    defaults = RateLimits()
    limits(
        login_ip=defaults.login_ip,
        login_account=defaults.login_account,
        login_account_ceiling=defaults.login_account_ceiling,
        login_slowed=defaults.login_slowed,
    )
    email = verified_owner(client, runtime)
    attacker = next(_addresses)
    statuses = [login(client, email, "wrong-password!", attacker).status_code for _ in range(20)]
    assert statuses == [401] * 5 + [429] * 15
    assert login(client, email, PASSWORD, next(_addresses)).status_code == 200


def test_past_the_account_ceiling_every_address_is_slowed_and_the_owner_still_logs_in(
    client, runtime, limits
):
    limits(login_account="5 per minute", login_account_ceiling="4 per hour", login_slowed="1 per minute")
    email = verified_owner(client, runtime)
    for _ in range(4):  # a distributed guesser: one failure from each of 4 addresses
        assert login(client, email, "wrong-password!", next(_addresses)).status_code == 401
    # Ceiling reached: each address, old or new, gets one more failure a minute, not five.
    for address in (next(_addresses), next(_addresses)):
        assert login(client, email, "wrong-password!", address).status_code == 401
        assert_limited(login(client, email, "wrong-password!", address))
    # Slowed, not locked: the owner, from an address without failures, logs in.
    assert login(client, email, PASSWORD, next(_addresses)).status_code == 200
    # The ceiling is per account: another account keeps its full per-address budget.
    other = verified_owner(client, runtime)
    address = next(_addresses)
    for _ in range(5):
        assert login(client, other, "wrong-password!", address).status_code == 401
    assert_limited(login(client, other, "wrong-password!", address))


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        {"email": 12},
        {"email": ["a@example.com"]},
        {"email": {"nested": True}},
        {"email": "\ud800@example.com", "password": "x" * 12},
    ],
)
def test_hostile_login_bodies_never_break_the_limiter(client, limits, body):
    limits(login_account="1 per minute")
    response = post(client, "/api/v1/auth/token", body, next(_addresses))
    assert response.status_code in (400, 401, 422)
    assert "detail" in response.json


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


def test_limiter_keys_and_log_lines_hold_no_address_and_no_plain_email_hash(
    app, client, runtime, limits, monkeypatch, caplog
):
    """The limiter logs its key when a limit is hit: the key is an HMAC under
    RATELIMIT_KEY_SECRET, so neither the client IP nor sha256(email) appears, and another secret
    gives other keys. LOG_CLIENT_IPS opts the address back in."""
    import hashlib
    import logging

    from backend.api.extension import client_address_key, limiter_key

    limits(signup_ip="1 per minute", signup_account="1 per minute")
    monkeypatch.setattr(
        runtime, "settings", runtime.settings.model_copy(update={"ratelimit_key_secret": "s" * 64})
    )
    address, body = next(_addresses), signup_body()
    caplog.set_level(logging.INFO)
    post(client, "/api/v1/auth/signup", body, address)
    assert_limited(post(client, "/api/v1/auth/signup", signup_body(email=body["email"]), address))
    logged = caplog.text
    assert "exceeded" in logged  # the limiter did log the refusal
    plain_email_hash = hashlib.sha256(body["email"].lower().encode()).hexdigest()[:32]
    assert address not in logged and plain_email_hash not in logged and body["email"] not in logged

    with app.test_request_context(environ_base={"REMOTE_ADDR": address}):
        keyed = client_address_key()
        assert keyed.startswith("ip:") and address not in keyed
        assert limiter_key("email", "a@example.com") != hashlib.sha256(b"a@example.com").hexdigest()[:32]
        monkeypatch.setattr(
            runtime, "settings", runtime.settings.model_copy(update={"ratelimit_key_secret": "t" * 64})
        )
        assert client_address_key() != keyed
        monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"log_client_ips": True}))
        assert client_address_key() == f"ip:{address}"


def test_the_limiter_adds_no_header_and_a_refusal_says_when_its_window_resets(client, limits):
    """Limited routes answer like any other until refused (flask-limiter's headers are off: it
    put Retry-After on every answer of a limited route); the 429's Retry-After is what is left
    of the breached limit's window."""
    limits(login_ip="2 per minute")
    address = next(_addresses)
    for i in range(2):
        body = {"email": f"h{i}-{uuid.uuid4().hex[:6]}@example.com", "password": "whatever-pass"}
        answer = post(client, "/api/v1/auth/token", body, address)
        assert answer.status_code == 401
        assert not [
            name for name in answer.headers.keys() if name.lower().startswith(("x-ratelimit", "retry"))
        ]
    refused = post(client, "/api/v1/auth/token", {"email": "z@example.com", "password": "p" * 12}, address)
    assert_limited(refused)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
