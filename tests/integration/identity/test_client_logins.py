"""A client's login follows its client record (issue 15, items 1 and 2): an invitation is
bound to the email it was mailed to, and deleting the record removes the login's place in the
workspace and ends its sessions at once."""

from __future__ import annotations

import uuid

from tests.eventually import eventually
from tests.integration.identity.conftest import PASSWORD, add_client_record, bearer, mailed_token
from tests.owner import owner_engine

API = "/api/v1"


def invite(client, m, client_id):
    return client.post(f"{API}/clients/{client_id}/invitation", headers=m.worker)


def accept(client, token):
    return client.post(f"{API}/auth/invitations/accept", json={"token": token, "password": PASSWORD})


def fresh_email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


def invited(client, runtime, mail_dir, m, name: str) -> tuple[uuid.UUID, str, str]:
    email = fresh_email(name)
    client_id = add_client_record(runtime, m.tenant, name=name.title(), email=email)
    assert invite(client, m, client_id).status_code == 201
    return client_id, email, mailed_token(mail_dir, email)


def test_changing_the_clients_email_revokes_the_invitation_mailed_to_the_old_one(
    client, member, runtime, mail_dir
):
    m, other = member(), member()
    client_id, old, token = invited(client, runtime, mail_dir, m, "olga")
    other_id, _, other_token = invited(client, runtime, mail_dir, other, "otto")

    changed = client.patch(f"{API}/clients/{client_id}", json={"email": fresh_email("new")}, headers=m.worker)
    assert changed.status_code == 200
    refused = accept(client, token)  # revoked like a superseded invitation: it has expired
    assert refused.status_code == 401 and refused.json == {"detail": "token_expired"}
    # Changing it back does not bring the revoked link back to life.
    assert (
        client.patch(f"{API}/clients/{client_id}", json={"email": old}, headers=m.worker).status_code == 200
    )
    assert accept(client, token).status_code == 401
    # Another workspace's invitation for a client with the same id space is untouched.
    assert accept(client, other_token).status_code == 200, other_id


def test_removing_the_email_revokes_the_invitation(client, member, runtime, mail_dir):
    m = member()
    client_id, _, token = invited(client, runtime, mail_dir, m, "rita")
    assert (
        client.patch(f"{API}/clients/{client_id}", json={"email": None}, headers=m.worker).status_code == 200
    )
    assert accept(client, token).status_code == 401


def test_acceptance_checks_the_invitations_email_against_the_record(client, member, runtime, mail_dir):
    """Even were the revocation missed (an email changed outside the API), the link mailed to
    the old address does not create a login tied to the record."""
    from backend.core.db import set_tenant_search_path
    from backend.infrastructure.sql.clients import clients

    m = member()
    client_id, _, token = invited(client, runtime, mail_dir, m, "ivan")
    with owner_engine().begin() as connection:
        set_tenant_search_path(connection, m.tenant.schema_name)
        connection.execute(
            clients.update().where(clients.c.id == client_id).values(email=fresh_email("moved"))
        )
    refused = accept(client, token)
    assert refused.status_code == 401 and refused.json == {"detail": "invalid_token"}


def test_deleting_a_client_removes_their_login_from_the_workspace_at_once(
    client, member, runtime, mail_dir, login
):
    m, other = member(), member()
    client_id, email, token = invited(client, runtime, mail_dir, m, "dora")
    assert accept(client, token).status_code == 200
    pair = login(email).json
    headers = bearer(pair["access_token"])
    assert client.get(f"{API}/me", headers=headers).status_code == 200
    their_headers = other.client

    assert client.delete(f"{API}/clients/{client_id}", headers=m.worker).status_code == 204

    # Other processes' caches hear of it through the registry's notification: within seconds,
    # far below the access cache's lifetime.
    gone = eventually(lambda: client.get(f"{API}/me", headers=headers), lambda r: r.status_code == 401)
    assert gone.status_code == 401 and gone.json == {"detail": "invalid_token"}
    refreshed = client.post(f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401
    relogin = login(email)
    assert relogin.status_code != 200 or relogin.json.get("access_token") is None
    # Another workspace's client keeps its access.
    assert client.get(f"{API}/me", headers=their_headers).status_code == 200

    # The same person, recreated as a client, can be invited and join again.
    recreated = add_client_record(runtime, m.tenant, name="Dora", email=email)
    assert invite(client, m, recreated).status_code == 201
    rejoined = accept(client, mailed_token(mail_dir, email))
    assert rejoined.status_code == 200, rejoined.json
    assert login(email).status_code == 200
