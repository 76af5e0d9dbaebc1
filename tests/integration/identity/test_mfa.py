"""TOTP second factor on real PostgreSQL: enrolment confirmed with a code, the login's second
step (TOTP or a single-use recovery code), no code replay, disabling with password + code,
the operator's reset, its rate limit, and that the secret is never stored in plain text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pyotp
from sqlalchemy import select

from backend.cli.tenants import tenants_cli
from backend.core.config import RateLimits
from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.mfa import mfa_recovery_codes, user_mfa
from tests.eventually import eventually
from tests.integration.identity.conftest import PASSWORD, bearer, mark_verified, update_tenant
from tests.owner import owner_engine


def worker_with_mfa(client, signup, login, runtime):
    """A verified worker who turned TOTP on: (signup body, account, TOTP, recovery codes)."""
    response, body = signup()
    account = response.json
    mark_verified(runtime, uuid.UUID(account["user"]["id"]))
    headers = bearer(login(body["email"]).json["access_token"])
    enrolment = client.post("/api/v1/me/mfa/totp", headers=headers)
    assert enrolment.status_code == 201, enrolment.json
    assert enrolment.json["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(enrolment.json["secret"])
    confirmed = client.post("/api/v1/me/mfa/totp/confirm", json={"code": totp.now()}, headers=headers)
    assert confirmed.status_code == 200, confirmed.json
    return body, account, totp, confirmed.json["recovery_codes"], headers


def next_code(totp: pyotp.TOTP) -> str:
    """A code of the next time step: the current one was spent (no replay)."""
    return totp.at(datetime.now(UTC).timestamp() + 30)


def second_step(client, challenge, code):
    return client.post("/api/v1/auth/token/mfa", json={"challenge": challenge, "code": code})


def test_mfa_login_walk(client, signup, login, runtime):
    body, account, totp, codes, _ = worker_with_mfa(client, signup, login, runtime)
    assert len(codes) == 10 and len(set(codes)) == 10
    first = login(body["email"])
    assert first.status_code == 401
    assert first.json["detail"] == "mfa_required" and first.json["expires_in"] == 300
    assert "access_token" not in first.json
    challenge = first.json["challenge"]
    wrong = second_step(client, challenge, "000000")
    assert wrong.status_code == 401 and wrong.json == {"detail": "invalid_mfa_code"}
    done = second_step(client, challenge, next_code(totp))
    assert done.status_code == 200, done.json
    me = client.get("/api/v1/me", headers=bearer(done.json["access_token"]))
    assert me.status_code == 200 and me.json["user"]["id"] == account["user"]["id"]
    # The challenge is single use; the same code is not accepted twice (no replay).
    assert second_step(client, challenge, next_code(totp)).json == {"detail": "invalid_token"}
    again = login(body["email"]).json["challenge"]
    assert second_step(client, again, next_code(totp)).json == {"detail": "invalid_mfa_code"}
    # A wrong password never reaches the second step.
    assert login(body["email"], "wrong-password-123").json == {"detail": "invalid_credentials"}


def test_a_recovery_code_works_once(client, signup, login, runtime):
    body, _, _, codes, headers = worker_with_mfa(client, signup, login, runtime)
    challenge = login(body["email"]).json["challenge"]
    assert second_step(client, challenge, codes[0].upper()).status_code == 200
    challenge = login(body["email"]).json["challenge"]
    assert second_step(client, challenge, codes[0]).json == {"detail": "invalid_mfa_code"}
    status = client.get("/api/v1/me/mfa", headers=headers)
    assert status.json["enabled"] is True and status.json["recovery_codes_left"] == 9


def test_secrets_and_recovery_codes_are_not_stored_in_plain_text(client, signup, login, runtime):
    _, account, totp, codes, _ = worker_with_mfa(client, signup, login, runtime)
    user_id = uuid.UUID(account["user"]["id"])
    with owner_engine().connect() as connection:
        sealed = connection.execute(
            select(user_mfa.c.secret_sealed).where(user_mfa.c.user_id == user_id)
        ).scalar_one()
        digests = connection.execute(
            select(mfa_recovery_codes.c.code_hash).where(mfa_recovery_codes.c.user_id == user_id)
        ).scalars()
        stored = b"".join([sealed, *digests])
    assert totp.secret.encode() not in stored
    assert all(c.replace("-", "").encode() not in stored for c in codes)


def test_enrolment_needs_a_right_code_and_happens_once(client, signup, login, runtime):
    response, body = signup()
    mark_verified(runtime, uuid.UUID(response.json["user"]["id"]))
    headers = bearer(login(body["email"]).json["access_token"])
    confirm = client.post("/api/v1/me/mfa/totp/confirm", json={"code": "123456"}, headers=headers)
    assert confirm.status_code == 409 and confirm.json["detail"] == "mfa_not_enrolling"
    secret = client.post("/api/v1/me/mfa/totp", headers=headers).json["secret"]
    wrong = client.post("/api/v1/me/mfa/totp/confirm", json={"code": "000000"}, headers=headers)
    assert wrong.status_code == 403 and wrong.json == {"detail": "invalid_mfa_code"}
    assert login(body["email"]).status_code == 200  # still off until confirmed
    right = client.post(
        "/api/v1/me/mfa/totp/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=headers
    )
    assert right.status_code == 200
    again = client.post("/api/v1/me/mfa/totp", headers=headers)
    assert again.status_code == 409 and again.json == {"detail": "mfa_already_enabled"}


def test_disable_needs_the_password_and_a_code(client, signup, login, runtime):
    body, _, totp, _, headers = worker_with_mfa(client, signup, login, runtime)
    bad_password = client.post(
        "/api/v1/me/mfa/totp/disable",
        json={"password": "not-my-password", "code": next_code(totp)},
        headers=headers,
    )
    assert bad_password.status_code == 403 and bad_password.json["detail"] == "invalid_password"
    bad_code = client.post(
        "/api/v1/me/mfa/totp/disable", json={"password": PASSWORD, "code": "000000"}, headers=headers
    )
    assert bad_code.status_code == 403 and bad_code.json == {"detail": "invalid_mfa_code"}
    assert login(body["email"]).json["detail"] == "mfa_required"
    off = client.post(
        "/api/v1/me/mfa/totp/disable", json={"password": PASSWORD, "code": next_code(totp)}, headers=headers
    )
    assert off.status_code == 204
    assert login(body["email"]).status_code == 200


def test_operator_resets_a_locked_out_owner(app, client, signup, login, runtime, listening):
    body, account, _, _, headers = worker_with_mfa(client, signup, login, runtime)
    runner = app.test_cli_runner()
    result = runner.invoke(tenants_cli, ["reset-mfa", "--email", body["email"]])
    assert result.exit_code == 0, result.output
    # Their sessions ended: the API process hears it through the registry's notification.
    ended = eventually(lambda: client.get("/api/v1/me", headers=headers), lambda r: r.status_code != 200)
    assert ended.json == {"detail": "invalid_token"}
    assert login(body["email"]).status_code == 200  # password alone again
    with owner_engine().connect() as connection:
        trail = connection.execute(
            select(audit_events.c.event, audit_events.c.metadata, audit_events.c.tenant_id).where(
                audit_events.c.target_id == account["user"]["id"], audit_events.c.event == "auth.mfa_disabled"
            )
        ).one()
    assert trail.metadata == {"reason": "operator"} and str(trail.tenant_id) == account["tenant"]["id"]
    again = runner.invoke(tenants_cli, ["reset-mfa", "--email", body["email"]])
    assert again.exit_code != 0 and "mfa_not_enabled" in again.output
    unknown = runner.invoke(tenants_cli, ["reset-mfa", "--email", "nobody-at-all@example.com"])
    assert unknown.exit_code != 0 and "not_found" in unknown.output


def test_a_read_only_worker_can_log_in_with_mfa_and_manage_it(client, signup, login, runtime):
    body, account, totp, _, _ = worker_with_mfa(client, signup, login, runtime)
    update_tenant(runtime, uuid.UUID(account["tenant"]["id"]), trial_ends_at=datetime(2000, 1, 1, tzinfo=UTC))
    challenge = login(body["email"]).json["challenge"]
    done = second_step(client, challenge, next_code(totp))
    assert done.status_code == 200
    headers = bearer(done.json["access_token"])
    assert client.get("/api/v1/me", headers=headers).json["access_mode"] == "read_only"
    assert client.get("/api/v1/me/mfa", headers=headers).json["enabled"] is True


def test_clients_cannot_enrol(client, member):
    m = member()
    assert client.post("/api/v1/me/mfa/totp", headers=m.client).json["detail"] == "forbidden"


def test_the_second_step_is_rate_limited_per_challenge(client, signup, login, runtime, monkeypatch):
    body, _, totp, _, _ = worker_with_mfa(client, signup, login, runtime)
    generous = {name: "10000 per minute" for name in RateLimits.model_fields}
    tight = RateLimits(**generous | {"mfa_account": "3 per minute"})
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"rate_limits": tight}))
    challenge = login(body["email"]).json["challenge"]
    for address in ("10.8.0.1", "10.8.0.2", "10.8.0.3"):
        wrong = client.post(
            "/api/v1/auth/token/mfa",
            json={"challenge": challenge, "code": "000000"},
            environ_base={"REMOTE_ADDR": address},
        )
        assert wrong.status_code == 401
    limited = client.post(
        "/api/v1/auth/token/mfa",
        json={"challenge": challenge, "code": next_code(totp)},
        environ_base={"REMOTE_ADDR": "10.8.0.4"},
    )
    assert limited.status_code == 429 and limited.json == {"detail": "rate_limited"}
