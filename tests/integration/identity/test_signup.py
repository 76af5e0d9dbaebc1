"""POST /auth/signup: an unverified worker, a workspace on trial (a claimed spare), all or nothing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from backend.api.identity import routes as identity_routes
from backend.infrastructure.sql.identity import memberships, users
from backend.infrastructure.sql.tenants import tenants
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from tests.integration.identity.conftest import (
    PASSWORD,
    deliver_queued_mail,
    mailed_token,
    signup_body,
    unique,
)
from tests.owner import owner_engine


def tenant_schema_count(runtime) -> int:
    with owner_engine().connect() as connection:
        return connection.execute(
            text("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant\\_%'")
        ).scalar_one()


def ready_spares() -> set:
    with owner_engine().connect() as connection:
        return set(connection.execute(text("SELECT id FROM shared.spare_schemas")).scalars())


def users_with_email(runtime, email: str) -> list:
    with owner_engine().connect() as connection:
        return connection.execute(select(users).where(func.lower(users.c.email) == email.lower())).all()


def tenants_with_slug(runtime, slug: str) -> list:
    with owner_engine().connect() as connection:
        return connection.execute(select(tenants).where(tenants.c.slug == slug)).all()


def test_signup_creates_an_unverified_worker_and_a_workspace_on_trial(signup, runtime, mail_dir):
    before = datetime.now(UTC)
    response, body = signup()
    assert response.status_code == 201, response.json
    user, tenant = response.json["user"], response.json["tenant"]
    assert user["email"] == body["email"] and user["verified"] is False and user["verified_at"] is None
    assert "password" not in user and "password_hash" not in user
    assert tenant["slug"] == body["workspace_slug"] and tenant["status"] == "active"
    trial_end = datetime.fromisoformat(tenant["trial_ends_at"])
    expected = before + timedelta(days=runtime.settings.trial_days)
    assert expected - timedelta(minutes=1) < trial_end < expected + timedelta(minutes=1)

    (row,) = users_with_email(runtime, body["email"])
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    (registry,) = tenants_with_slug(runtime, body["workspace_slug"])
    with owner_engine().connect() as connection:
        role = connection.execute(
            select(memberships.c.role).where(
                memberships.c.user_id == row.id, memberships.c.tenant_id == registry.id
            )
        ).scalar_one()
        schema = connection.execute(
            text("SELECT nspname FROM pg_namespace WHERE nspname = :n"), {"n": registry.schema_name}
        ).scalar_one_or_none()
    assert role == "worker" and schema == registry.schema_name
    assert mailed_token(mail_dir, body["email"])


def test_signup_without_slug_derives_one_from_the_workspace_name(signup):
    name = f"Studio {unique('n')}"
    first, _ = signup(workspace_name=name, workspace_slug=None)
    second, _ = signup(workspace_name=name, workspace_slug=None)
    assert first.status_code == second.status_code == 201
    assert first.json["tenant"]["slug"] == name.lower().replace(" ", "-")
    assert second.json["tenant"]["slug"].startswith(first.json["tenant"]["slug"][:20])
    assert second.json["tenant"]["slug"] != first.json["tenant"]["slug"]


def test_email_is_unique_case_insensitively(signup):
    response, body = signup()
    assert response.status_code == 201
    again, _ = signup(email=body["email"].upper())
    assert again.status_code == 409 and again.json == {"detail": "email_taken"}


def test_slug_taken(signup):
    response, body = signup()
    assert response.status_code == 201
    again, _ = signup(workspace_slug=body["workspace_slug"])
    assert again.status_code == 409 and again.json == {"detail": "slug_taken"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"password": "short"}, "password"),
        ({"password": "p" * 257}, "password"),
        ({"email": "same-as-password@example.com", "password": "same-as-password@example.com"}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"workspace_slug": "Bad Slug"}, "slug"),
        ({"workspace_name": ""}, "name"),
        ({"is_admin": True}, "is_admin"),
    ],
)
def test_signup_refuses_invalid_input(signup, runtime, overrides, field):
    response, body = signup(**overrides)
    assert response.status_code == 422, response.json
    assert response.json["detail"] == "validation_error" and field in response.json["errors"]
    assert users_with_email(runtime, body["email"]) == []


class SpareClaimedThenFailure:
    """A schema manager that claims a spare workspace for real, then fails."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def claim_spare(self):
        assert self._inner.claim_spare() is not None
        raise RuntimeError("injected failure after the spare was claimed")

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class FailingProvisioning(SqlRegistryUnitOfWork):
    def _bind(self, connection) -> None:
        super()._bind(connection)
        self.schemas = SpareClaimedThenFailure(self.schemas)


def test_signup_is_all_or_nothing_when_provisioning_fails(client, runtime, monkeypatch, mail_dir):
    failing = lambda: FailingProvisioning(runtime.engine, spares=True)  # noqa: E731
    monkeypatch.setattr(identity_routes, "_claiming_uow", failing)
    schemas_before, spares_before = tenant_schema_count(runtime), ready_spares()
    body = signup_body()
    response = client.post("/api/v1/auth/signup", json=body)
    assert response.status_code == 500 and response.json == {"detail": "internal_error"}
    assert users_with_email(runtime, body["email"]) == []
    assert tenants_with_slug(runtime, body["workspace_slug"]) == []
    # The claimed spare is back in the pool: the claim is undone with the rest.
    assert tenant_schema_count(runtime) == schemas_before and ready_spares() == spares_before
    deliver_queued_mail()
    assert not any(body["email"] in p.read_text() for p in mail_dir.glob("*.eml"))

    monkeypatch.undo()  # the same signup then simply works: nothing was left behind
    assert client.post("/api/v1/auth/signup", json=body).status_code == 201


def _concurrently(app, bodies: list[dict]) -> list:
    barrier = threading.Barrier(len(bodies))
    responses: list = [None] * len(bodies)

    def run(index: int) -> None:
        test_client = app.test_client()
        barrier.wait()
        responses[index] = test_client.post("/api/v1/auth/signup", json=bodies[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


@pytest.mark.parametrize("shared", ["email", "workspace_slug"])
def test_two_concurrent_signups_one_wins_nothing_half_made(app, runtime, shared):
    first = signup_body()
    second = signup_body(**{shared: first[shared]})
    schemas_before, spares_before = tenant_schema_count(runtime), ready_spares()
    responses = _concurrently(app, [first, second])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409], [r.json for r in responses]
    loser = next(r for r in responses if r.status_code == 409)
    assert loser.json == {"detail": "email_taken" if shared == "email" else "slug_taken"}
    # One spare became the winner's workspace; the loser's claim was rolled back.
    assert tenant_schema_count(runtime) == schemas_before and len(spares_before - ready_spares()) == 1
    slugs = {b["workspace_slug"] for b in (first, second)}
    emails = {b["email"] for b in (first, second)}
    assert sum(len(tenants_with_slug(runtime, slug)) for slug in slugs) == 1
    assert sum(len(users_with_email(runtime, email)) for email in emails) == 1
    # The winner's workspace is complete: its owner can log in.
    winner = next(r for r in responses if r.status_code == 201).json
    with owner_engine().connect() as connection:
        owners = connection.execute(
            select(func.count()).where(
                memberships.c.tenant_id == winner["tenant"]["id"], memberships.c.role == "worker"
            )
        ).scalar_one()
    assert owners == 1
