"""Client invitations: a worker invites a client record; the person accepts with a password."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from backend.infrastructure.sql.identity import memberships
from tests.integration.identity.conftest import PASSWORD, add_client_record, bearer, mailed_token
from tests.owner import owner_engine


def invite(client, m, client_id):
    return client.post(f"/api/v1/clients/{client_id}/invitation", headers=m.worker)


def test_invited_client_accepts_logs_in_and_is_linked_to_the_record(client, member, runtime, mail_dir, login):
    m = member()
    email = f"carla-{uuid.uuid4().hex[:8]}@example.com"
    client_id = add_client_record(runtime, m.tenant, name="Carla", email=email)
    sent = invite(client, m, client_id)
    assert sent.status_code == 201, sent.json
    assert sent.json["client_id"] == str(client_id) and sent.json["email"] == email
    token = mailed_token(mail_dir, email)

    accepted = client.post("/api/v1/auth/invitations/accept", json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 200, accepted.json
    assert accepted.json["user"]["email"] == email and accepted.json["user"]["verified"] is True
    assert accepted.json["tenant"]["slug"] == m.tenant.slug
    with owner_engine().connect() as connection:
        row = connection.execute(
            select(memberships).where(
                memberships.c.tenant_id == m.tenant.id, memberships.c.client_id == client_id
            )
        ).one()
    assert row.role == "client"

    pair = login(email)
    assert pair.status_code == 200
    me = client.get("/api/v1/me", headers=bearer(pair.json["access_token"])).json
    assert me["role"] == "client" and me["tenant"]["id"] == str(m.tenant.id)

    used = client.post("/api/v1/auth/invitations/accept", json={"token": token, "password": PASSWORD})
    assert used.status_code == 409 and used.json == {"detail": "invitation_used"}
    again = invite(client, m, client_id)
    assert again.status_code == 409 and again.json["detail"] == "already_member"


def test_client_without_email_cannot_be_invited(client, member, runtime):
    m = member()
    client_id = add_client_record(runtime, m.tenant, name="No Mail")
    response = invite(client, m, client_id)
    assert response.status_code == 422 and "email" in response.json["errors"]


def test_another_workspaces_client_is_not_found(client, member, runtime):
    mine, theirs = member(), member()
    response = invite(client, mine, theirs.client_id)
    assert response.status_code == 404 and response.json == {"detail": "not_found"}
    assert invite(client, mine, uuid.uuid4()).status_code == 404


def test_a_client_cannot_invite(client, member):
    m = member()
    response = client.post(f"/api/v1/clients/{m.client_id}/invitation", headers=m.client)
    assert response.status_code == 403 and response.json == {"detail": "forbidden"}


def test_a_new_invitation_supersedes_the_previous_one(client, member, runtime, mail_dir):
    m = member()
    email = f"dora-{uuid.uuid4().hex[:8]}@example.com"
    client_id = add_client_record(runtime, m.tenant, name="Dora", email=email)
    invite(client, m, client_id)
    first = mailed_token(mail_dir, email)
    invite(client, m, client_id)
    second = mailed_token(mail_dir, email)
    stale = client.post("/api/v1/auth/invitations/accept", json={"token": first, "password": PASSWORD})
    assert stale.status_code == 401 and stale.json == {"detail": "token_expired"}
    fresh = client.post("/api/v1/auth/invitations/accept", json={"token": second, "password": PASSWORD})
    assert fresh.status_code == 200


def test_one_person_client_of_two_workspaces(client, member, runtime, mail_dir, login):
    first, second = member(), member()
    email = f"eve-{uuid.uuid4().hex[:8]}@example.com"
    for m in (first, second):
        client_id = add_client_record(runtime, m.tenant, name="Eve", email=email)
        assert invite(client, m, client_id).status_code == 201
        token = mailed_token(mail_dir, email)
        # The second workspace's invitation is accepted with the password Eve already has.
        accepted = client.post("/api/v1/auth/invitations/accept", json={"token": token, "password": PASSWORD})
        assert accepted.status_code == 200, accepted.json
    ambiguous = login(email)
    assert ambiguous.status_code == 422 and "tenant" in ambiguous.json["errors"]
    for m in (first, second):
        pair = login(email, tenant=m.tenant.slug)
        me = client.get("/api/v1/me", headers=bearer(pair.json["access_token"])).json
        assert me["tenant"]["id"] == str(m.tenant.id) and me["role"] == "client"


def test_an_existing_login_is_never_replaced_by_an_invitation(client, member, runtime, mail_dir, login):
    first, second = member(), member()
    email = f"fay-{uuid.uuid4().hex[:8]}@example.com"
    client_a = add_client_record(runtime, first.tenant, name="Fay", email=email)
    invite(client, first, client_a)
    client.post(
        "/api/v1/auth/invitations/accept", json={"token": mailed_token(mail_dir, email), "password": PASSWORD}
    )
    client_b = add_client_record(runtime, second.tenant, name="Fay", email=email)
    invite(client, second, client_b)
    token = mailed_token(mail_dir, email)
    hijack = client.post(
        "/api/v1/auth/invitations/accept", json={"token": token, "password": "another-password"}
    )
    assert hijack.status_code == 401 and hijack.json == {"detail": "invalid_credentials"}
    assert login(email, "another-password").status_code == 401
    assert login(email, tenant=first.tenant.slug).status_code == 200


def test_accept_refuses_bad_input(client):
    unknown = client.post("/api/v1/auth/invitations/accept", json={"token": "nope", "password": PASSWORD})
    assert unknown.status_code == 401 and unknown.json == {"detail": "invalid_token"}
    extra = client.post(
        "/api/v1/auth/invitations/accept", json={"token": "nope", "password": PASSWORD, "role": "worker"}
    )
    assert extra.status_code == 422 and "role" in extra.json["errors"]


def test_invitation_password_rules(client, member, runtime, mail_dir):
    m = member()
    email = f"gus-{uuid.uuid4().hex[:8]}@example.com"
    client_id = add_client_record(runtime, m.tenant, name="Gus", email=email)
    invite(client, m, client_id)
    token = mailed_token(mail_dir, email)
    for password in ("short", email):
        response = client.post("/api/v1/auth/invitations/accept", json={"token": token, "password": password})
        assert response.status_code == 422 and "password" in response.json["errors"]
    ok = client.post(
        "/api/v1/auth/invitations/accept", json={"token": token, "password": PASSWORD, "name": "Gus G"}
    )
    assert ok.status_code == 200 and ok.json["user"]["name"] == "Gus G"
