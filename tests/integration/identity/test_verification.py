"""Email verification: single-use, expiring tokens by mail; the operator command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from backend.cli import tenants_cli
from backend.infrastructure.sql.identity import one_time_tokens, users
from backend.service.identity import token_digest
from tests.integration.identity.conftest import bearer, mailed_token
from tests.owner import owner_engine


def test_mailed_token_verifies_once_and_unblocks_the_worker(client, signup, login, mail_dir):
    _response, body = signup()
    tokens = login(body["email"]).json
    assert client.get("/api/v1/me", headers=bearer(tokens["access_token"])).json == {
        "detail": "worker_unverified"
    }
    token = mailed_token(mail_dir, body["email"])
    verified = client.post("/api/v1/auth/verify", json={"token": token})
    assert verified.status_code == 200 and verified.json["verified"] is True
    me = client.get("/api/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200 and me.json["access_mode"] == "active"
    again = client.post("/api/v1/auth/verify", json={"token": token})
    assert again.status_code == 409 and again.json == {"detail": "already_verified"}


def test_unknown_and_expired_tokens_are_refused(client, signup, runtime, mail_dir):
    assert client.post("/api/v1/auth/verify", json={"token": "nope"}).json == {"detail": "invalid_token"}
    _, body = signup()
    token = mailed_token(mail_dir, body["email"])
    with owner_engine().begin() as connection:
        connection.execute(
            update(one_time_tokens)
            .where(one_time_tokens.c.token_hash == token_digest(token))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = client.post("/api/v1/auth/verify", json={"token": token})
    assert response.status_code == 401 and response.json == {"detail": "token_expired"}


def test_only_the_digest_of_a_token_is_stored(signup, runtime, mail_dir):
    _, body = signup()
    token = mailed_token(mail_dir, body["email"])
    with owner_engine().connect() as connection:
        stored = connection.execute(
            select(one_time_tokens.c.token_hash).where(one_time_tokens.c.email == body["email"])
        ).scalar_one()
    assert stored == token_digest(token) and token.encode() not in stored


def test_resend_supersedes_the_previous_link_and_answers_the_same_for_strangers(
    client, signup, mail_dir, run_jobs
):
    _, body = signup()
    first = mailed_token(mail_dir, body["email"])
    response = client.post("/api/v1/auth/verify/resend", json={"email": body["email"]})
    assert response.status_code == 202
    run_jobs()  # the worker mails the link, not the request
    second = mailed_token(mail_dir, body["email"])
    assert second != first
    assert client.post("/api/v1/auth/verify", json={"token": first}).json == {"detail": "token_expired"}
    assert client.post("/api/v1/auth/verify", json={"token": second}).status_code == 200
    stranger = client.post("/api/v1/auth/verify/resend", json={"email": "nobody-here@example.com"})
    assert stranger.status_code == 202 and stranger.data == response.data


def test_operator_verifies_a_worker(app, signup, runtime):
    _, body = signup()
    runner = app.test_cli_runner()
    result = runner.invoke(tenants_cli, ["verify-worker", "--email", body["email"].upper()])
    assert result.exit_code == 0, result.output
    assert f"verified {body['email']}" in result.output
    with owner_engine().connect() as connection:
        verified_at = connection.execute(
            select(users.c.verified_at).where(users.c.email == body["email"])
        ).scalar_one()
    assert verified_at is not None
    again = runner.invoke(tenants_cli, ["verify-worker", "--email", body["email"]])
    assert again.exit_code != 0 and "already_verified" in again.output
    unknown = runner.invoke(tenants_cli, ["verify-worker", "--email", "nobody-at-all@example.com"])
    assert unknown.exit_code != 0 and "not_found" in unknown.output
