"""Login, refresh rotation with reuse detection, logout, /me, and registry changes taking
effect on live tokens."""

from __future__ import annotations

import uuid

from argon2 import PasswordHasher
from sqlalchemy import delete, select, update

from backend.infrastructure.sql.identity import memberships, refresh_tokens, users
from backend.infrastructure.sql.tenants import tenants
from backend.service.identity import token_digest
from tests.eventually import eventually
from tests.integration.identity.conftest import (
    PASSWORD,
    add_client_record,
    bearer,
    mark_verified,
    update_tenant,
)
from tests.owner import owner_engine


def verified_signup(signup, runtime):
    response, body = signup()
    assert response.status_code == 201, response.json
    mark_verified(runtime, uuid.UUID(response.json["user"]["id"]))
    return response.json, body


def test_login_returns_a_bearer_pair_and_me_describes_the_caller(client, signup, login, runtime):
    account, body = verified_signup(signup, runtime)
    response = login(body["email"].upper())
    assert response.status_code == 200, response.json
    pair = response.json
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == runtime.settings.access_token_ttl_s
    assert pair["refresh_token"] and pair["access_token"].count(".") == 2
    me = client.get("/api/v1/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200
    assert me.json["user"]["id"] == account["user"]["id"]
    assert me.json["tenant"] == account["tenant"]
    assert me.json["role"] == "worker" and me.json["access_mode"] == "active"


def test_unknown_email_and_wrong_password_get_the_same_answer(signup, login, runtime):
    _, body = verified_signup(signup, runtime)
    wrong = login(body["email"], "wrong-password-123")
    unknown = login(f"nobody-{uuid.uuid4().hex[:8]}@example.com")
    malformed = login("not an email at all")
    for response in (wrong, unknown, malformed):
        assert response.status_code == 401
        assert response.json == {"detail": "invalid_credentials"}
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]


def test_a_user_without_password_cannot_log_in(make_tenant, login):
    tenant = make_tenant()  # operator-provisioned owner: no password yet
    response = login(f"owner-{tenant.slug}@example.com")
    assert response.status_code == 401 and response.json == {"detail": "invalid_credentials"}


def test_login_rehashes_a_hash_made_with_other_parameters(signup, login, runtime):
    _account, body = verified_signup(signup, runtime)
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with owner_engine().begin() as connection:
        connection.execute(update(users).where(users.c.email == body["email"]).values(password_hash=old))
    assert login(body["email"]).status_code == 200
    with owner_engine().connect() as connection:
        stored = connection.execute(
            select(users.c.password_hash).where(users.c.email == body["email"])
        ).scalar()
    assert stored != old and "m=19456,t=2,p=1" in stored
    assert login(body["email"]).status_code == 200


def test_refresh_rotates_and_reuse_revokes_the_whole_family(client, signup, login, runtime):
    _, body = verified_signup(signup, runtime)
    first = login(body["email"]).json
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second = second.json
    assert second["refresh_token"] != first["refresh_token"]
    third = client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}).json
    assert client.get("/api/v1/me", headers=bearer(third["access_token"])).status_code == 200

    # The first token is presented again: stolen. The family dies, including the newest pair.
    reused = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and reused.json == {"detail": "refresh_token_reused"}
    latest = client.post("/api/v1/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert latest.status_code == 401 and latest.json == {"detail": "invalid_token"}
    me = client.get("/api/v1/me", headers=bearer(third["access_token"]))
    assert me.status_code == 401 and me.json == {"detail": "invalid_token"}

    with owner_engine().connect() as connection:
        family = connection.execute(
            select(refresh_tokens.c.family_id).where(
                refresh_tokens.c.token_hash == token_digest(first["refresh_token"])
            )
        ).scalar_one()
        rows = connection.execute(select(refresh_tokens).where(refresh_tokens.c.family_id == family)).all()
    assert len(rows) == 3 and all(row.revoked_at is not None for row in rows)


def test_another_login_session_survives_a_reuse_in_this_one(client, signup, login, runtime):
    _, body = verified_signup(signup, runtime)
    laptop, phone = login(body["email"]).json, login(body["email"]).json
    client.post("/api/v1/auth/refresh", json={"refresh_token": laptop["refresh_token"]})
    client.post("/api/v1/auth/refresh", json={"refresh_token": laptop["refresh_token"]})
    assert (
        client.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}).status_code == 200
    )


def test_unknown_and_expired_refresh_tokens(client, signup, login, runtime):
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 43}).json == {
        "detail": "invalid_token"
    }
    _, body = verified_signup(signup, runtime)
    pair = login(body["email"]).json
    with owner_engine().begin() as connection:
        connection.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.token_hash == token_digest(pair["refresh_token"]))
            .values(expires_at=refresh_tokens.c.issued_at)
        )
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 401 and response.json == {"detail": "token_expired"}


def test_logout_revokes_the_session(client, signup, login, runtime):
    _, body = verified_signup(signup, runtime)
    pair = login(body["email"]).json
    headers = bearer(pair["access_token"])
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401 and refreshed.json == {"detail": "invalid_token"}
    me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 401 and me.json == {"detail": "invalid_token"}


def test_removed_membership_takes_effect_on_a_live_token(client, member, runtime, listening):
    m = member()
    assert client.get("/api/v1/me", headers=m.client).status_code == 200
    with owner_engine().begin() as connection:  # another process: no eviction here
        connection.execute(delete(memberships).where(memberships.c.user_id == m.client_user_id))
    response = eventually(lambda: client.get("/api/v1/me", headers=m.client), lambda r: r.status_code != 200)
    assert response.status_code == 401 and response.json == {"detail": "invalid_token"}


def test_disabling_a_tenant_elsewhere_takes_effect_at_once(client, member, runtime, listening):
    m = member()
    assert client.get("/api/v1/me", headers=m.worker).status_code == 200
    assert client.get("/api/v1/me", headers=m.client).status_code == 200
    with owner_engine().begin() as connection:  # another process: no eviction here
        connection.execute(update(tenants).where(tenants.c.id == m.tenant.id).values(status="disabled"))
    for headers in (m.worker, m.client):
        response = eventually(
            lambda h=headers: client.get("/api/v1/me", headers=h), lambda r: r.status_code != 200
        )
        assert response.status_code == 403 and response.json == {"detail": "tenant_disabled"}
    update_tenant(runtime, m.tenant.id, status="active")
    assert client.get("/api/v1/me", headers=m.worker).status_code == 200


def test_token_names_the_tenant_and_needs_it_with_several_workspaces(client, signup, login, runtime, member):
    _, body = verified_signup(signup, runtime)
    other = member()
    client_id = add_client_record(runtime, other.tenant, name="Also a client elsewhere")
    with owner_engine().begin() as connection:
        user_id = connection.execute(select(users.c.id).where(users.c.email == body["email"])).scalar()
        connection.execute(
            memberships.insert().values(
                id=uuid.uuid4(),
                user_id=user_id,
                tenant_id=other.tenant.id,
                role="client",
                client_id=client_id,
            )
        )
    ambiguous = login(body["email"])
    assert ambiguous.status_code == 422 and "tenant" in ambiguous.json["errors"]
    chosen = login(body["email"], tenant=other.tenant.slug)
    assert chosen.status_code == 200
    me = client.get("/api/v1/me", headers=bearer(chosen.json["access_token"])).json
    assert me["tenant"]["slug"] == other.tenant.slug and me["role"] == "client"
    stranger = login(body["email"], tenant="no-such-workspace")
    assert stranger.status_code == 403 and stranger.json["detail"] == "forbidden"
