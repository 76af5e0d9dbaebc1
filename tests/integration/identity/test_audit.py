"""The audit trail: identity events are recorded, a worker reads their workspace's trail,
and no password, token or hash ever reaches the trail or the logs."""

from __future__ import annotations

import io
import logging
import uuid
from datetime import UTC, datetime

import pyotp
from sqlalchemy import func, select

from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.identity import users
from tests.integration.domain.conftest import PDF
from tests.integration.identity.conftest import (
    PASSWORD,
    add_client_record,
    bearer,
    mailed_token,
    signup_body,
    update_tenant,
)
from tests.owner import owner_engine


def trail(client, headers, **params) -> list[dict]:
    response = client.get("/api/v1/audit-events", headers=headers, query_string=params)
    assert response.status_code == 200, response.json
    return response.json


def test_every_identity_flow_is_audited_without_secrets(client, runtime, mail_dir, caplog):
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [PASSWORD, "wrong-password-xyz"]
    body = signup_body()
    account = client.post("/api/v1/auth/signup", json=body).json
    tenant_id = account["tenant"]["id"]
    verification = mailed_token(mail_dir, body["email"])
    secrets.append(verification)
    client.post("/api/v1/auth/verify", json={"token": verification})
    client.post("/api/v1/auth/token", json={"email": body["email"], "password": "wrong-password-xyz"})
    client.post("/api/v1/auth/token", json={"email": "nobody@example.com", "password": "wrong-password-xyz"})
    pair = client.post("/api/v1/auth/token", json={"email": body["email"], "password": PASSWORD}).json
    secrets += [pair["access_token"], pair["refresh_token"]]
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json
    secrets += [rotated["access_token"], rotated["refresh_token"]]
    client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})  # reuse
    pair = client.post("/api/v1/auth/token", json={"email": body["email"], "password": PASSWORD}).json
    secrets += [pair["access_token"], pair["refresh_token"]]
    worker = bearer(pair["access_token"])

    email = f"hal-{uuid.uuid4().hex[:8]}@example.com"
    tenant = type("T", (), {"schema_name": f"tenant_{uuid.UUID(tenant_id).hex}"})
    client_id = add_client_record(runtime, tenant, name="Hal", email=email)
    client.post(f"/api/v1/clients/{client_id}/invitation", headers=worker)
    invitation = mailed_token(mail_dir, email)
    client_password = "hal-password-123"
    secrets += [invitation, client_password]
    client.post("/api/v1/auth/invitations/accept", json={"token": invitation, "password": client_password})
    client_pair = client.post("/api/v1/auth/token", json={"email": email, "password": client_password}).json
    secrets += [client_pair["access_token"], client_pair["refresh_token"]]
    client.get("/api/v1/audit-events", headers=bearer(client_pair["access_token"]))  # forbidden
    update_tenant(runtime, uuid.UUID(tenant_id), trial_ends_at=None)
    client.post(f"/api/v1/clients/{client_id}/invitation", headers=worker)  # read_only
    update_tenant(runtime, uuid.UUID(tenant_id), status="disabled")
    client.get("/api/v1/me", headers=worker)  # blocked
    update_tenant(runtime, uuid.UUID(tenant_id), status="active", trial_ends_at=None, plan="paid")
    client.post("/api/v1/auth/logout", headers=worker)

    with owner_engine().connect() as connection:
        rows = connection.execute(
            select(audit_events).where(audit_events.c.tenant_id == tenant_id).order_by(audit_events.c.id)
        ).all()
        hashes = connection.execute(
            select(users.c.password_hash).where(users.c.email.in_([body["email"], email]))
        ).scalars()
        secrets += list(hashes)
        anonymous = connection.execute(
            select(audit_events).where(
                audit_events.c.tenant_id.is_(None), audit_events.c.event == "auth.login"
            )
        ).all()
    seen = [(row.event, row.outcome, row.metadata.get("code") or row.metadata.get("reason")) for row in rows]
    for expected in [
        ("auth.signup", "success", None),
        ("auth.verified", "success", "token"),
        ("auth.login", "success", None),
        ("auth.login", "failure", "bad_password"),
        ("auth.refresh", "success", None),
        ("auth.refresh_reused", "failure", None),
        ("invitation.sent", "success", None),
        ("invitation.accepted", "success", None),
        ("access.denied", "denied", "forbidden"),
        ("access.denied", "denied", "read_only"),
        ("access.denied", "denied", "tenant_disabled"),
        ("auth.logout", "success", None),
    ]:
        assert expected in seen, expected
    assert any(row.metadata.get("reason") == "unknown_user" for row in anonymous)

    # The API shows the same trail to the workspace's worker, newest first.
    again = client.post("/api/v1/auth/token", json={"email": body["email"], "password": PASSWORD}).json
    secrets += [again["access_token"], again["refresh_token"]]
    listed = trail(client, bearer(again["access_token"]), page_size=100)
    assert listed[0]["event"] == "auth.login"
    assert [e["event"] for e in listed[1:]] == [row.event for row in reversed(rows)]

    everything = " ".join(repr(tuple(row)) for row in [*rows, *anonymous])
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in secrets:
        assert secret not in everything
        assert secret not in logged


def test_trail_is_paginated_and_scoped_to_the_workspace(client, member):
    mine, theirs = member(), member()
    for _ in range(3):
        client.get("/api/v1/audit-events", headers=mine.client)  # 3 access.denied events
    client.get("/api/v1/audit-events", headers=theirs.client)
    response = client.get(
        "/api/v1/audit-events", headers=mine.worker, query_string={"page": 1, "page_size": 2}
    )
    assert response.status_code == 200 and len(response.json) == 2
    assert '"total": 4' in response.headers["X-Pagination"]  # tenant.provisioned + 3 refusals
    page_two = client.get(
        "/api/v1/audit-events", headers=mine.worker, query_string={"page": 2, "page_size": 2}
    )
    events = response.json + page_two.json
    assert [e["event"] for e in events] == ["access.denied"] * 3 + ["tenant.provisioned"]
    assert all(e["actor_role"] == "client" and e["metadata"]["code"] == "forbidden" for e in events[:3])
    theirs_trail = client.get("/api/v1/audit-events", headers=theirs.worker).json
    assert len(theirs_trail) == 2
    assert not {e["id"] for e in events} & {e["id"] for e in theirs_trail}


def test_clients_cannot_read_the_trail(client, member):
    m = member()
    response = client.get("/api/v1/audit-events", headers=m.client)
    assert response.status_code == 403 and response.json == {"detail": "forbidden"}


def test_account_flows_are_audited_without_secrets(app, client, runtime, mail_dir, caplog):
    """Issue 17's flows, each one run for real (every step's status is checked, so a flow that
    stopped early cannot pass unnoticed): password reset, password and email change, TOTP
    enrolment, both kinds of second-step login, disabling, the workspace's second-factor
    requirement, the client's data download and account deletion, ending sessions. Every
    audit row written meanwhile and every log record is then searched for every secret
    that passed by: reset, email-change, invitation and challenge tokens, old and new
    passwords, the TOTP secret and its URI, every code typed, the recovery codes, access and
    refresh tokens, password hashes, and the bytes of a downloaded file."""
    caplog.set_level(logging.DEBUG)
    with owner_engine().connect() as connection:
        before = connection.execute(select(func.coalesce(func.max(audit_events.c.id), 0))).scalar_one()
    secrets: list[str] = [PASSWORD, "wrong-current-pass-1"]

    def ok(response, status: int = 200):
        assert response.status_code == status, (response.status_code, response.get_json(silent=True))
        return response.get_json(silent=True)

    def tokens(pair: dict) -> dict:
        secrets.extend([pair["access_token"], pair["refresh_token"]])
        return bearer(pair["access_token"])

    body = signup_body()
    account = ok(client.post("/api/v1/auth/signup", json=body), 201)
    tenant_id = uuid.UUID(account["tenant"]["id"])
    verification = mailed_token(mail_dir, body["email"])
    secrets.append(verification)
    ok(client.post("/api/v1/auth/verify", json={"token": verification}))
    email = body["email"]

    # Forgotten password: request (known and unknown address), a wrong token, the reset.
    forgot = client.post("/api/v1/auth/password/forgot", json={"email": email})
    forgot.close()  # the mail leaves once the response is closed
    assert forgot.status_code == 202
    client.post("/api/v1/auth/password/forgot", json={"email": "nobody-17@example.com"}).close()
    reset_token, first_new = mailed_token(mail_dir, email), "reset-chosen-pass-17"
    secrets += [reset_token, first_new]
    assert (
        client.post(
            "/api/v1/auth/password/reset", json={"token": "x" * 43, "password": first_new}
        ).status_code
        == 401
    )
    ok(client.post("/api/v1/auth/password/reset", json={"token": reset_token, "password": first_new}))
    worker = tokens(ok(client.post("/api/v1/auth/token", json={"email": email, "password": first_new})))

    # Change of password (a wrong current one first), then of email.
    second_new = "changed-pass-phrase-17"
    secrets.append(second_new)
    change = {"current_password": "wrong-current-pass-1", "new_password": second_new}
    assert client.post("/api/v1/me/password", json=change, headers=worker).status_code == 403
    change["current_password"] = first_new
    ok(client.post("/api/v1/me/password", json=change, headers=worker))
    new_email = f"moved-{uuid.uuid4().hex[:8]}@example.com"
    ok(
        client.post(
            "/api/v1/me/email", json={"password": second_new, "new_email": new_email}, headers=worker
        ),
        202,
    )
    email_token = mailed_token(mail_dir, new_email)
    secrets.append(email_token)
    ok(client.post("/api/v1/auth/email/confirm", json={"token": email_token}))
    email = new_email

    # TOTP: enrolment (a wrong code, then a right one), both kinds of second step.
    enrolment = ok(client.post("/api/v1/me/mfa/totp", headers=worker), 201)
    totp = pyotp.TOTP(enrolment["secret"])
    secrets += [enrolment["secret"], enrolment["otpauth_uri"]]
    assert (
        client.post("/api/v1/me/mfa/totp/confirm", json={"code": "000000"}, headers=worker).status_code == 403
    )
    confirm_code = totp.now()
    recovery = ok(client.post("/api/v1/me/mfa/totp/confirm", json={"code": confirm_code}, headers=worker))
    recovery_codes = recovery["recovery_codes"]
    secrets += [confirm_code, *recovery_codes, *(c.replace("-", "") for c in recovery_codes)]
    first_step = client.post("/api/v1/auth/token", json={"email": email, "password": second_new})
    assert first_step.status_code == 401 and first_step.json["detail"] == "mfa_required"
    challenge, login_code = first_step.json["challenge"], totp.at(datetime.now(UTC).timestamp() + 30)
    secrets += [challenge, login_code]
    assert (
        client.post("/api/v1/auth/token/mfa", json={"challenge": challenge, "code": "111111"}).status_code
        == 401
    )
    worker = tokens(
        ok(client.post("/api/v1/auth/token/mfa", json={"challenge": challenge, "code": login_code}))
    )
    challenge = client.post("/api/v1/auth/token", json={"email": email, "password": second_new}).json[
        "challenge"
    ]
    secrets.append(challenge)
    tokens(
        ok(client.post("/api/v1/auth/token/mfa", json={"challenge": challenge, "code": recovery_codes[0]}))
    )

    # The workspace requires a second factor, then no longer does; sessions: end the others.
    ok(client.patch("/api/v1/tenant/settings", json={"mfa_required_for_workers": True}, headers=worker))
    ok(client.patch("/api/v1/tenant/settings", json={"mfa_required_for_workers": False}, headers=worker))
    ok(client.post("/api/v1/me/sessions/end-others", headers=worker))

    # A client: invited, downloads their data (a file among it), closes their login.
    client_email = f"cl-{uuid.uuid4().hex[:8]}@example.com"
    tenant = type("T", (), {"schema_name": f"tenant_{tenant_id.hex}"})
    client_id = add_client_record(runtime, tenant, name="Cleo", email=client_email)
    ok(client.post(f"/api/v1/clients/{client_id}/invitation", headers=worker), 201)
    invitation, client_password = mailed_token(mail_dir, client_email), "client-pass-phrase-17"
    secrets += [invitation, client_password]
    ok(
        client.post(
            "/api/v1/auth/invitations/accept", json={"token": invitation, "password": client_password}
        )
    )
    file_bytes = PDF + b" FILE-CONTENT-" + uuid.uuid4().hex.encode()
    secrets.append(file_bytes.decode("latin-1").split(" ")[-1])
    form = {"file": (io.BytesIO(file_bytes), "x.pdf"), "client_id": str(client_id)}
    ok(client.post("/api/v1/media", data=form, headers=worker, content_type="multipart/form-data"), 201)
    cleo = tokens(
        ok(client.post("/api/v1/auth/token", json={"email": client_email, "password": client_password}))
    )
    download = client.get("/api/v1/me/data", headers=cleo, buffered=True)
    assert download.status_code == 200 and file_bytes in download.get_data()
    ok(client.delete("/api/v1/me/account", json={"password": client_password}, headers=cleo), 204)

    # Off again: password + a recovery code.
    disable = {"password": second_new, "code": recovery_codes[1]}
    ok(client.post("/api/v1/me/mfa/totp/disable", json=disable, headers=worker), 204)

    with owner_engine().connect() as connection:
        rows = connection.execute(
            select(audit_events).where(audit_events.c.id > before).order_by(audit_events.c.id)
        ).all()
        secrets += connection.execute(select(users.c.password_hash).where(users.c.email == email)).scalars()
    ours = [row for row in rows if row.tenant_id in (tenant_id, None)]
    events_seen = {(row.event, row.outcome) for row in ours}
    for expected in [
        ("auth.password_reset_requested", "success"),
        ("auth.password_reset_requested", "failure"),
        ("auth.password_reset", "success"),
        ("auth.password_changed", "success"),
        ("auth.email_change_requested", "success"),
        ("auth.email_changed", "success"),
        ("auth.mfa_enabled", "success"),
        ("auth.mfa_failed", "failure"),
        ("auth.mfa_challenged", "success"),
        ("auth.mfa_recovery_code_used", "success"),
        ("auth.mfa_disabled", "success"),
        ("tenant.mfa_policy_changed", "success"),
        ("auth.session_ended", "success"),
        ("client.data_exported", "success"),
        ("client.account_deleted", "success"),
    ]:
        assert expected in events_seen, expected

    everything = " ".join(repr(tuple(row)) for row in rows)
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert len(secrets) > 30
    for secret in secrets:
        assert secret, "an empty secret would match anything"
        assert secret not in everything, f"audit trail holds a secret: {secret[:6]}..."
        assert secret not in logged, f"a log record holds a secret: {secret[:6]}..."
