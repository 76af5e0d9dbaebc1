"""The audit trail: identity events are recorded, a worker reads their workspace's trail,
and no password, token or hash ever reaches the trail or the logs."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select

from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.identity import users
from tests.integration.identity.conftest import (
    PASSWORD,
    add_client_record,
    bearer,
    mailed_token,
    signup_body,
    update_tenant,
)


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

    with runtime.owner_engine.connect() as connection:
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
