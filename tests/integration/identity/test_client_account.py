"""A client closes their own login: membership and (without other workspaces) the account go,
sessions end at once, the worker keeps the record and is told; no one else's login is touched."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from backend.core.passwords import hash_password
from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.identity import memberships, users
from tests.integration.identity.conftest import PASSWORD, bearer
from tests.integration.identity.test_email_change import mails_to
from tests.owner import owner_engine


def with_password(runtime, user_id) -> None:
    with owner_engine().begin() as connection:
        connection.execute(
            update(users).where(users.c.id == user_id).values(password_hash=hash_password(PASSWORD))
        )


def test_a_client_deletes_their_login_and_the_worker_keeps_the_record(
    client, member, runtime, mail_dir, login
):
    m, other = member(), member()
    with_password(runtime, m.client_user_id)
    email = f"c-{m.tenant.slug}@example.com"
    pair = login(email).json
    headers = bearer(pair["access_token"])
    wrong = client.delete("/api/v1/me/account", json={"password": "not-my-password"}, headers=headers)
    assert wrong.status_code == 403 and wrong.json["detail"] == "invalid_password"
    assert (
        client.delete("/api/v1/me/account", json={"password": PASSWORD}, headers=m.worker).json["detail"]
        == "forbidden"
    )

    done = client.delete("/api/v1/me/account", json={"password": PASSWORD}, headers=headers)
    assert done.status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert login(email).status_code == 401
    with owner_engine().connect() as connection:
        assert connection.execute(select(users.c.id).where(users.c.id == m.client_user_id)).first() is None
        event = connection.execute(
            select(audit_events.c.tenant_id, audit_events.c.target_id, audit_events.c.metadata).where(
                audit_events.c.event == "client.account_deleted", audit_events.c.target_id == str(m.client_id)
            )
        ).one()
        # The other workspace's client login is untouched.
        assert connection.execute(
            select(memberships.c.id).where(memberships.c.user_id == other.client_user_id)
        ).first()
    assert event.tenant_id == m.tenant.id and event.metadata == {"reason": "account"}
    # The worker keeps the client record, and was told.
    record = client.get(f"/api/v1/clients/{m.client_id}", headers=m.worker)
    assert record.status_code == 200
    assert "A client closed their login" in mails_to(mail_dir, f"owner-{m.tenant.slug}@example.com")
    assert client.get("/api/v1/me", headers=other.client).status_code == 200


def test_a_client_of_two_workspaces_keeps_the_other_login(client, member, runtime, login):
    m, second = member(), member()
    with_password(runtime, m.client_user_id)
    with owner_engine().begin() as connection:
        connection.execute(
            memberships.insert().values(
                id=uuid.uuid4(),
                user_id=m.client_user_id,
                tenant_id=second.tenant.id,
                role="client",
                client_id=second.client_id,
            )
        )
    email = f"c-{m.tenant.slug}@example.com"
    pair = login(email, tenant=m.tenant.slug).json
    done = client.delete(
        "/api/v1/me/account", json={"password": PASSWORD}, headers=bearer(pair["access_token"])
    )
    assert done.status_code == 204
    assert login(email, tenant=m.tenant.slug).status_code == 403
    assert login(email, tenant=second.tenant.slug).status_code == 200
