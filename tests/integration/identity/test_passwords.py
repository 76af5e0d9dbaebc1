"""Forgotten password (request, mailed single-use token, new password, every session ends),
the first password of an operator-provisioned owner, and the change of a known password."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from backend.cli.tenants import tenants_cli
from backend.core.config import RateLimits
from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.identity import one_time_tokens, users
from backend.service.identity import token_digest
from tests.integration.identity.conftest import (
    PASSWORD,
    bearer,
    deliver_queued_mail,
    mailed_token,
    mark_verified,
    update_tenant,
)
from tests.owner import owner_engine

NEW_PASSWORD = "a-brand-new-passphrase"


def verified_worker(signup, login, runtime):
    response, body = signup()
    assert response.status_code == 201, response.json
    mark_verified(runtime, uuid.UUID(response.json["user"]["id"]))
    pair = login(body["email"]).json
    return response.json, body, pair


def forgot(client, email):
    """The mail leaves once the response is closed (the WSGI server does it after sending)."""
    response = client.post("/api/v1/auth/password/forgot", json={"email": email})
    response.close()
    return response


def reset(client, token, password=NEW_PASSWORD):
    return client.post("/api/v1/auth/password/reset", json={"token": token, "password": password})


def test_forgotten_password_recovery_ends_every_session(client, signup, login, runtime, mail_dir):
    account, body, pair = verified_worker(signup, login, runtime)
    other_device = login(body["email"]).json
    requested = forgot(client, body["email"])
    assert requested.status_code == 202
    token = mailed_token(mail_dir, body["email"])
    with owner_engine().connect() as connection:
        stored = connection.execute(
            select(one_time_tokens.c.token_hash, one_time_tokens.c.expires_at).where(
                one_time_tokens.c.kind == "password_reset",
                one_time_tokens.c.user_id == uuid.UUID(account["user"]["id"]),
            )
        ).one()
    assert stored.token_hash == token_digest(token)  # only the digest is stored
    assert stored.expires_at <= datetime.now(UTC) + timedelta(seconds=runtime.settings.password_reset_ttl_s)

    done = reset(client, token)
    assert done.status_code == 200, done.json
    assert done.json["id"] == account["user"]["id"] and "password" not in done.json
    # Every session ended: access tokens fail at once, refresh tokens too.
    for session in (pair, other_device):
        me = client.get("/api/v1/me", headers=bearer(session["access_token"]))
        assert me.status_code == 401 and me.json == {"detail": "invalid_token"}
        again = client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert again.status_code == 401
    assert login(body["email"]).status_code == 401
    assert login(body["email"], NEW_PASSWORD).status_code == 200
    # Single use.
    assert reset(client, token, "yet-another-passphrase").json == {"detail": "invalid_token"}
    with owner_engine().connect() as connection:
        trail = connection.execute(
            select(audit_events.c.event, audit_events.c.outcome, audit_events.c.tenant_id).where(
                audit_events.c.actor_user_id == uuid.UUID(account["user"]["id"]),
                audit_events.c.event.like("auth.password%"),
            )
        ).all()
    assert {(e.event, e.outcome) for e in trail} == {
        ("auth.password_reset_requested", "success"),
        ("auth.password_reset", "success"),
    }
    assert all(
        e.tenant_id == uuid.UUID(account["tenant"]["id"]) for e in trail if e.event == "auth.password_reset"
    )


def test_unknown_and_known_emails_get_the_same_answer(client, signup, login, runtime, mail_dir):
    _, body, _ = verified_worker(signup, login, runtime)
    known = forgot(client, body["email"])
    unknown = forgot(client, f"nobody-{uuid.uuid4().hex[:8]}@example.com")
    malformed = forgot(client, "not an email")
    for response in (known, unknown, malformed):
        assert response.status_code == 202 and response.data == known.data
    assert {k for k, _ in known.headers} == {k for k, _ in unknown.headers}
    deliver_queued_mail()
    assert not any("nobody-" in p.read_text() for p in mail_dir.glob("*.eml"))


def test_expired_superseded_and_invalid_tokens_fail(client, signup, login, runtime, mail_dir):
    _, body, _ = verified_worker(signup, login, runtime)
    forgot(client, body["email"])
    first = mailed_token(mail_dir, body["email"])
    forgot(client, body["email"])
    second = mailed_token(mail_dir, body["email"])
    assert first != second
    assert reset(client, first).json == {"detail": "token_expired"}  # superseded by the newer link
    assert reset(client, "x" * 43).json == {"detail": "invalid_token"}
    too_short = reset(client, second, "short")
    assert too_short.status_code == 422 and "password" in too_short.json["errors"]
    with owner_engine().begin() as connection:
        connection.execute(
            update(one_time_tokens)
            .where(one_time_tokens.c.token_hash == token_digest(second))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert reset(client, second).json == {"detail": "token_expired"}
    assert login(body["email"]).status_code == 200  # nothing changed


def test_a_link_sent_to_an_old_address_stops_working(client, signup, login, runtime, mail_dir):
    account, body, _ = verified_worker(signup, login, runtime)
    forgot(client, body["email"])
    token = mailed_token(mail_dir, body["email"])
    with owner_engine().begin() as connection:
        connection.execute(
            update(users)
            .where(users.c.id == uuid.UUID(account["user"]["id"]))
            .values(email=f"new-{body['email']}")
        )
    assert reset(client, token).json == {"detail": "invalid_token"}


def test_provisioned_owner_sets_a_first_password_through_the_cli_link(
    app, client, make_tenant, login, mail_dir
):
    tenant = make_tenant(verified=False)
    email = f"owner-{tenant.slug}@example.com"
    assert login(email).status_code == 401  # no password yet
    runner = app.test_cli_runner()
    result = runner.invoke(tenants_cli, ["send-password-reset", "--email", email])
    assert result.exit_code == 0, result.output
    assert f"password link mailed to {email}" in result.output
    done = reset(client, mailed_token(mail_dir, email))
    assert done.status_code == 200 and done.json["verified"] is True  # the mailed link proves the address
    pair = login(email, NEW_PASSWORD)
    assert pair.status_code == 200
    me = client.get("/api/v1/me", headers=bearer(pair.json["access_token"]))
    assert me.status_code == 200 and me.json["access_mode"] == "active"
    unknown = runner.invoke(tenants_cli, ["send-password-reset", "--email", "nobody-at-all@example.com"])
    assert unknown.exit_code != 0 and "not_found" in unknown.output


def test_a_disabled_workspace_user_can_reset_but_not_use_the_workspace(
    client, member, login, mail_dir, runtime
):
    m = member("active")
    email = f"owner-{m.tenant.slug}@example.com"
    update_tenant(runtime, m.tenant.id, status="disabled", disabled_at=datetime.now(UTC))
    assert forgot(client, email).status_code == 202
    assert reset(client, mailed_token(mail_dir, email)).status_code == 200
    pair = login(email, NEW_PASSWORD)
    assert pair.status_code == 200
    me = client.get("/api/v1/me", headers=bearer(pair.json["access_token"]))
    assert me.status_code == 403 and me.json == {"detail": "tenant_disabled"}


def test_change_password_needs_the_current_one_and_ends_the_other_sessions(client, signup, login, runtime):
    _account, body, pair = verified_worker(signup, login, runtime)
    other = login(body["email"]).json
    headers = bearer(pair["access_token"])
    wrong = client.post(
        "/api/v1/me/password",
        json={"current_password": "not-the-password", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert wrong.status_code == 403 and wrong.json["detail"] == "invalid_password"
    weak = client.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "short"}, headers=headers
    )
    assert weak.status_code == 422
    assert login(body["email"]).status_code == 200  # nothing changed so far
    changed = client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert changed.status_code == 200 and changed.json["ended"] >= 2
    assert client.get("/api/v1/me", headers=headers).status_code == 200  # this session kept
    assert client.get("/api/v1/me", headers=bearer(other["access_token"])).json == {"detail": "invalid_token"}
    assert login(body["email"]).status_code == 401
    assert login(body["email"], NEW_PASSWORD).status_code == 200
    # Not keeping this session: it ends too.
    second = client.post(
        "/api/v1/me/password",
        json={"current_password": NEW_PASSWORD, "new_password": PASSWORD, "keep_this_session": False},
        headers=headers,
    )
    assert second.status_code == 200
    assert client.get("/api/v1/me", headers=headers).json == {"detail": "invalid_token"}


def test_a_read_only_worker_can_change_the_password(client, signup, login, runtime):
    account, _body, pair = verified_worker(signup, login, runtime)
    update_tenant(
        runtime, uuid.UUID(account["tenant"]["id"]), trial_ends_at=datetime.now(UTC) - timedelta(days=1)
    )
    headers = bearer(pair["access_token"])
    assert client.get("/api/v1/me", headers=headers).json["access_mode"] == "read_only"
    changed = client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert changed.status_code == 200, changed.json


def test_reset_requests_and_attempts_are_rate_limited(client, runtime, monkeypatch):
    generous = {name: "10000 per minute" for name in RateLimits.model_fields}
    tight = generous | {"password_reset_account": "2 per minute", "password_reset_ip": "4 per minute"}
    monkeypatch.setattr(
        runtime, "settings", runtime.settings.model_copy(update={"rate_limits": RateLimits(**tight)})
    )
    email = f"someone-{uuid.uuid4().hex[:8]}@example.com"

    def post(path, body, address):
        return client.post(path, json=body, environ_base={"REMOTE_ADDR": address})

    # Per email, across addresses (each request may send a mail).
    for address in ("10.7.0.1", "10.7.0.2"):
        assert post("/api/v1/auth/password/forgot", {"email": email}, address).status_code == 202
    limited = post("/api/v1/auth/password/forgot", {"email": email.upper()}, "10.7.0.3")
    assert limited.status_code == 429 and limited.json == {"detail": "rate_limited"}
    assert "Retry-After" in limited.headers
    # Guessing one reset token from many addresses: failures per token.
    token = uuid.uuid4().hex
    for address in ("10.7.1.1", "10.7.1.2"):
        assert (
            post(
                "/api/v1/auth/password/reset", {"token": token, "password": NEW_PASSWORD}, address
            ).status_code
            == 401
        )
    assert (
        post(
            "/api/v1/auth/password/reset", {"token": token, "password": NEW_PASSWORD}, "10.7.1.3"
        ).status_code
        == 429
    )
    # Per address, whatever the email.
    for i in range(4):
        assert post("/api/v1/auth/password/forgot", {"email": f"x{i}-{email}"}, "10.7.2.1").status_code == 202
    assert post("/api/v1/auth/password/forgot", {"email": f"y-{email}"}, "10.7.2.1").status_code == 429
