"""Changing the login email: password required, the new address confirms before anything
changes, the old address is told, and what was mailed to the old address stops working."""

from __future__ import annotations

import uuid
from email import policy
from email.parser import BytesParser

from tests.integration.identity.conftest import (
    PASSWORD,
    add_client_record,
    bearer,
    deliver_queued_mail,
    mailed_token,
    mark_verified,
)


def mails_to(mail_dir, to: str) -> list[str]:
    deliver_queued_mail()
    found = []
    for path in sorted(mail_dir.glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if message["To"].lower() == to.lower():
            found.append(message["Subject"])
    return found


def test_email_change_takes_effect_only_once_confirmed(client, signup, login, runtime, mail_dir, member):
    response, body = signup()
    mark_verified(runtime, uuid.UUID(response.json["user"]["id"]))
    old, new = body["email"], f"new-{uuid.uuid4().hex[:8]}@example.com"
    headers = bearer(login(old).json["access_token"])
    # Something mailed to the old address before the change: an invitation of another workspace.
    other = member()
    invited = add_client_record(runtime, other.tenant, email=old)
    assert client.post(f"/api/v1/clients/{invited}/invitation", headers=other.worker).status_code == 201
    invitation = mailed_token(mail_dir, old)

    wrong = client.post(
        "/api/v1/me/email", json={"password": "not-the-password", "new_email": new}, headers=headers
    )
    assert wrong.status_code == 403 and wrong.json["detail"] == "invalid_password"
    taken = client.post(
        "/api/v1/me/email",
        json={"password": PASSWORD, "new_email": f"owner-{other.tenant.slug}@example.com"},
        headers=headers,
    )
    assert taken.status_code == 409 and taken.json["detail"] == "email_taken"
    asked = client.post("/api/v1/me/email", json={"password": PASSWORD, "new_email": new}, headers=headers)
    assert asked.status_code == 202
    assert "A change of your email address was requested" in mails_to(mail_dir, old)
    assert login(new).status_code == 401 and login(old).status_code == 200  # nothing changed yet

    confirmed = client.post("/api/v1/auth/email/confirm", json={"token": mailed_token(mail_dir, new)})
    assert confirmed.status_code == 200 and confirmed.json["email"] == new and confirmed.json["verified"]
    assert login(old).status_code == 401 and login(new).status_code == 200
    assert mails_to(mail_dir, old)[-1] == "Your email address was changed"
    accepted = client.post(
        "/api/v1/auth/invitations/accept", json={"token": invitation, "password": PASSWORD}
    )
    assert accepted.status_code == 401 and accepted.json["detail"] == "token_expired"
    # Single use.
    again = client.post("/api/v1/auth/email/confirm", json={"token": mailed_token(mail_dir, new)})
    assert again.status_code == 401


def test_a_reset_link_sent_to_the_old_address_stops_working(client, signup, login, runtime, mail_dir):
    response, body = signup()
    mark_verified(runtime, uuid.UUID(response.json["user"]["id"]))
    old, new = body["email"], f"new-{uuid.uuid4().hex[:8]}@example.com"
    headers = bearer(login(old).json["access_token"])
    client.post("/api/v1/auth/password/forgot", json={"email": old}).close()
    reset_token = mailed_token(mail_dir, old)
    client.post("/api/v1/me/email", json={"password": PASSWORD, "new_email": new}, headers=headers)
    client.post("/api/v1/auth/email/confirm", json={"token": mailed_token(mail_dir, new)})
    reset = client.post(
        "/api/v1/auth/password/reset", json={"token": reset_token, "password": "another-passphrase"}
    )
    assert reset.status_code == 401
    assert login(new).status_code == 200
