"""The workspace setting that requires a second factor of its workers, on real PostgreSQL:
only a worker with a factor may switch it on, a worker without one is then held at the
enrolment routes (403 `mfa_enrolment_required` elsewhere) until they enrol, clients and other
workspaces are untouched, every change is in the trail, and a factor removed in another
process holds the worker again at once (the registry's notification)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pyotp
from sqlalchemy import delete, select

from backend.core.passwords import hash_password
from backend.domain.identity import Role
from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.identity import SqlMembershipRepository, SqlUserRepository
from backend.infrastructure.sql.mfa import user_mfa
from backend.infrastructure.sql.tenants import tenants
from tests.eventually import eventually
from tests.integration.identity.conftest import PASSWORD, bearer, update_tenant
from tests.integration.identity.test_mfa import worker_with_mfa
from tests.owner import owner_engine
from tests.sessions import session_token

SETTINGS = "/api/v1/tenant/settings"
GATE = {"detail": "mfa_enrolment_required"}


def second_worker(runtime, tenant_id: uuid.UUID) -> tuple[uuid.UUID, dict]:
    """A verified worker of the tenant without a second factor, and their headers."""
    user_id = uuid.uuid4()
    with owner_engine().begin() as connection:
        SqlUserRepository(connection).add(
            user_id, f"w2-{user_id.hex[:10]}@example.com", "Second", None, datetime.now(UTC)
        )
        SqlMembershipRepository(connection).add(user_id=user_id, tenant_id=tenant_id, role=Role.WORKER)
    return user_id, bearer(session_token(runtime, user_id=user_id, tenant_id=tenant_id))


def policy_events(runtime, tenant_id) -> list[dict]:
    with owner_engine().connect() as connection:
        return [
            dict(row._mapping)
            for row in connection.execute(
                select(audit_events.c.actor_user_id, audit_events.c.metadata, audit_events.c.target_id)
                .where(
                    audit_events.c.tenant_id == tenant_id, audit_events.c.event == "tenant.mfa_policy_changed"
                )
                .order_by(audit_events.c.id)
            )
        ]


def stored_setting(runtime, tenant_id) -> bool:
    with owner_engine().connect() as connection:
        return connection.execute(
            select(tenants.c.mfa_required_for_workers).where(tenants.c.id == tenant_id)
        ).scalar_one()


def test_only_a_worker_with_a_factor_can_require_one(client, member, runtime):
    m = member()
    assert client.get(SETTINGS, headers=m.worker).json == {"mfa_required_for_workers": False}
    refused = client.patch(SETTINGS, json={"mfa_required_for_workers": True}, headers=m.worker)
    assert refused.status_code == 409 and refused.json["detail"] == "mfa_not_enabled"
    assert stored_setting(runtime, m.tenant.id) is False and policy_events(runtime, m.tenant.id) == []
    # Clients may neither read nor change it; unknown fields are refused.
    assert client.get(SETTINGS, headers=m.client).json == {"detail": "forbidden"}
    assert (
        client.patch(SETTINGS, json={"mfa_required_for_workers": True}, headers=m.client).status_code == 403
    )
    unknown = client.patch(SETTINGS, json={"plan": "paid"}, headers=m.worker)
    assert unknown.status_code == 422 and unknown.json["detail"] == "validation_error"
    for not_a_boolean in (0, 1, "true", "yes", None):  # JSON true or false only
        loose = client.patch(SETTINGS, json={"mfa_required_for_workers": not_a_boolean}, headers=m.worker)
        assert loose.status_code == 422 and "mfa_required_for_workers" in loose.json["errors"], not_a_boolean


def test_required_factor_holds_workers_without_one_until_they_enrol(client, signup, login, runtime, member):
    body, account, totp, _, owner = worker_with_mfa(client, signup, login, runtime)
    tenant_id = uuid.UUID(account["tenant"]["id"])
    # The owner's second-factor login, for the session that changes the setting.
    code = totp.at(datetime.now(UTC).timestamp() + 30)
    challenge = login(body["email"]).json["challenge"]
    pair = client.post("/api/v1/auth/token/mfa", json={"challenge": challenge, "code": code}).json
    owner = bearer(pair["access_token"])
    colleague_id, colleague = second_worker(runtime, tenant_id)
    assert client.get("/api/v1/clients", headers=colleague).status_code == 200
    elsewhere = member()  # another workspace, its worker has no factor

    on = client.patch(SETTINGS, json={"mfa_required_for_workers": True}, headers=owner)
    assert on.status_code == 200 and on.json == {"mfa_required_for_workers": True}
    assert client.patch(SETTINGS, json={"mfa_required_for_workers": True}, headers=owner).status_code == 200

    # The colleague's open session is held at once: workspace routes answer the gate...
    for method, path in [("GET", "/api/v1/clients"), ("GET", "/api/v1/export"), ("GET", SETTINGS)]:
        response = client.open(path, method=method, headers=colleague, buffered=True)
        assert (response.status_code, response.json) == (403, GATE), path
    off_attempt = client.patch(SETTINGS, json={"mfa_required_for_workers": False}, headers=colleague)
    assert (off_attempt.status_code, off_attempt.json) == (403, GATE)
    # ...while /me says why, and the enrolment routes, sessions and password stay open.
    me = client.get("/api/v1/me", headers=colleague).json
    assert me["mfa_enrolment_required"] is True
    assert client.get("/api/v1/me/sessions", headers=colleague).status_code == 200
    secret = client.post("/api/v1/me/mfa/totp", headers=colleague)
    assert secret.status_code == 201
    # The owner, the other workspace's worker and this workspace's clients are not held.
    assert client.get("/api/v1/clients", headers=owner).status_code == 200
    assert client.get("/api/v1/me", headers=owner).json["mfa_enrolment_required"] is False
    assert client.get("/api/v1/clients", headers=elsewhere.worker).status_code == 200
    assert client.get(SETTINGS, headers=elsewhere.worker).json == {"mfa_required_for_workers": False}

    code = pyotp.TOTP(secret.json["secret"]).now()
    assert (
        client.post("/api/v1/me/mfa/totp/confirm", json={"code": code}, headers=colleague).status_code == 200
    )
    assert client.get("/api/v1/clients", headers=colleague).status_code == 200
    assert client.get("/api/v1/me", headers=colleague).json["mfa_enrolment_required"] is False

    off = client.patch(SETTINGS, json={"mfa_required_for_workers": False}, headers=owner)
    assert off.json == {"mfa_required_for_workers": False}
    trail = policy_events(runtime, tenant_id)
    assert [e["metadata"] for e in trail] == [{"required": True}, {"required": False}]  # no-op not recorded
    assert {e["actor_user_id"] for e in trail} == {uuid.UUID(account["user"]["id"])}
    assert all(e["target_id"] == str(tenant_id) for e in trail)
    assert colleague_id  # (the colleague changed nothing)


def test_a_fresh_password_login_of_a_held_worker_gets_tokens_that_only_open_enrolment(
    client, signup, login, runtime
):
    """The login itself answers as usual (the worker needs a session to enrol); the gate is
    on the workspace's routes."""
    body, account, _, _, owner = worker_with_mfa(client, signup, login, runtime)
    tenant_id = uuid.UUID(account["tenant"]["id"])
    client.patch(SETTINGS, json={"mfa_required_for_workers": True}, headers=owner)
    with owner_engine().begin() as connection:
        user_id = uuid.uuid4()
        email = f"w3-{user_id.hex[:10]}@example.com"
        SqlUserRepository(connection).add(user_id, email, "Third", hash_password(PASSWORD), datetime.now(UTC))
        SqlMembershipRepository(connection).add(user_id=user_id, tenant_id=tenant_id, role=Role.WORKER)
    pair = login(email)
    assert pair.status_code == 200, pair.json
    headers = bearer(pair.json["access_token"])
    assert client.get("/api/v1/appointments", headers=headers).json == GATE
    assert client.get("/api/v1/me/mfa", headers=headers).json["enabled"] is False
    assert body  # (the owner's own login is covered in test_mfa)


def test_a_read_only_workspace_still_lets_its_worker_require_a_factor(client, signup, login, runtime):
    body, account, totp, _, owner = worker_with_mfa(client, signup, login, runtime)
    tenant_id = uuid.UUID(account["tenant"]["id"])
    update_tenant(runtime, tenant_id, trial_ends_at=datetime(2000, 1, 1, tzinfo=UTC))
    assert client.get("/api/v1/me", headers=owner).json["access_mode"] == "read_only"
    on = client.patch(SETTINGS, json={"mfa_required_for_workers": True}, headers=owner)
    assert on.status_code == 200
    colleague_id, colleague = second_worker(runtime, tenant_id)
    # Held, and the gate answers before read-only would (the mode below it still applies).
    assert client.get("/api/v1/clients", headers=colleague).json == GATE
    assert client.get("/api/v1/me", headers=colleague).json["access_mode"] == "blocked"
    assert body and totp and colleague_id


def test_a_factor_removed_elsewhere_holds_the_worker_at_once(client, signup, login, runtime, listening):
    """No request of this process removed it: the API hears the registry's notification
    (a trigger on shared.user_mfa), well before the access cache's 300 s TTL."""
    _, account, _, _, owner = worker_with_mfa(client, signup, login, runtime)
    user_id = uuid.UUID(account["user"]["id"])
    client.patch(SETTINGS, json={"mfa_required_for_workers": True}, headers=owner)
    assert client.get("/api/v1/clients", headers=owner).status_code == 200
    with owner_engine().begin() as connection:  # e.g. a manual fix by an operator
        connection.execute(delete(user_mfa).where(user_mfa.c.user_id == user_id))
    held = eventually(lambda: client.get("/api/v1/clients", headers=owner), lambda r: r.status_code != 200)
    assert (held.status_code, held.json) == (403, GATE)


def test_the_setting_changed_elsewhere_applies_at_once(client, signup, login, runtime, member, listening):
    m = member()
    assert client.get("/api/v1/clients", headers=m.worker).status_code == 200
    with owner_engine().begin() as connection:
        connection.execute(
            tenants.update().where(tenants.c.id == m.tenant.id).values(mfa_required_for_workers=True)
        )
    held = eventually(lambda: client.get("/api/v1/clients", headers=m.worker), lambda r: r.status_code != 200)
    assert (held.status_code, held.json) == (403, GATE)
    assert client.get("/api/v1/appointments", headers=m.client).status_code == 200  # clients are never held
