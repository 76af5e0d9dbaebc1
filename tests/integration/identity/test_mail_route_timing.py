"""The routes that mail answer in the same time whatever the account's state (issue 14 item 3):
each enqueues one job and does no account-state-dependent work in the request; the worker
looks the account up, draws the token and mails (docs/jobs.md). The resend route has its own
test (test_resend_timing.py)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from backend.infrastructure.sql.identity import one_time_tokens
from tests.integration.identity.conftest import (
    add_client_record,
    deliver_queued_mail,
    mailed_token,
    mark_verified,
    signup_body,
)
from tests.integration.identity.timing import assert_same_time
from tests.owner import owner_engine


def _post(client, path: str, body: dict, headers: dict | None = None):
    return lambda: client.post(path, json=body, headers=headers or {})


def test_password_reset_request_takes_the_same_time_for_every_account_state(
    client, signup, member, runtime, mail_dir
):
    _, unverified = signup()
    response, verified = signup()
    mark_verified(runtime, uuid.UUID(response.json["user"]["id"]))
    no_password = member("unverified")  # an operator-provisioned owner: no password yet
    owner_email = f"owner-{no_password.tenant.slug}@example.com"
    emails = {
        "unknown": f"nobody-{uuid.uuid4().hex[:8]}@example.com",
        "verified": verified["email"],
        "unverified": unverified["email"],
        "no_password": owner_email,
    }
    path = "/api/v1/auth/password/forgot"
    assert_same_time({state: _post(client, path, {"email": email}) for state, email in emails.items()})
    deliver_queued_mail()  # the worker mails every known account, and nobody else
    for state in ("verified", "unverified", "no_password"):
        assert mailed_token(mail_dir, emails[state])
    assert not [p for p in mail_dir.glob("*.eml") if emails["unknown"].encode() in p.read_bytes()]


def test_signup_with_a_taken_email_takes_the_same_time_whether_its_account_is_verified_or_not(
    client, signup, runtime
):
    """A taken email is refused (409 email_taken, in the contract); whether that account ever
    verified its address, or has one outstanding link, must not show."""
    verified_response, verified = signup()
    mark_verified(runtime, uuid.UUID(verified_response.json["user"]["id"]))
    _, unverified = signup()
    sends = {
        state: _post(client, "/api/v1/auth/signup", signup_body(email=email))
        for state, email in (("verified", verified["email"]), ("unverified", unverified["email"]))
    }
    assert_same_time(sends)


def test_signup_sends_no_mail_in_the_request(client, runtime, mail_dir, run_jobs):
    body = signup_body()
    assert client.post("/api/v1/auth/signup", json=body).status_code == 201
    assert not [p for p in mail_dir.glob("*.eml") if body["email"].encode() in p.read_bytes()]
    with owner_engine().connect() as connection:
        tokens = connection.execute(
            select(one_time_tokens.c.id).where(one_time_tokens.c.email == body["email"])
        )
        assert tokens.all() == [], "the token is drawn by the worker, not in the request"
    run_jobs()
    assert mailed_token(mail_dir, body["email"])


def test_an_invitation_takes_the_same_time_whether_the_address_has_an_account_or_not(
    client, member, signup, runtime, mail_dir
):
    m = member()
    _, elsewhere_verified = signup()
    _, elsewhere_unverified = signup()
    addresses = {
        "unknown": f"invitee-{uuid.uuid4().hex[:8]}@example.com",
        "verified_elsewhere": elsewhere_verified["email"],
        "unverified_elsewhere": elsewhere_unverified["email"],
    }
    clients = {state: add_client_record(runtime, m.tenant, email=email) for state, email in addresses.items()}
    sends = {
        state: _post(client, f"/api/v1/clients/{client_id}/invitation", {}, m.worker)
        for state, client_id in clients.items()
    }
    # The answer names the client and its expiry, which differ per client: compare the status.
    statuses = {state: send().status_code for state, send in sends.items()}
    assert set(statuses.values()) == {201}, statuses
    assert_same_time({state: _status_only(send) for state, send in sends.items()})
    for email in addresses.values():
        assert mailed_token(mail_dir, email)  # the worker mailed each, the newest link only


class _Status:
    def __init__(self, response) -> None:
        self.status_code = response.status_code
        self.data = b""


def _status_only(send):
    return lambda: _Status(send())
