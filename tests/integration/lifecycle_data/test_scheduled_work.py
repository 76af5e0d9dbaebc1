"""The worker's periodic tasks (issue 14 item 4): retention opens only the tenants whose trash
holds media past retention, due deletions are purged, unverified signups are removed after
UNVERIFIED_RETENTION_DAYS (user, workspace, schema, role); each run is audited, and another
tenant's data is never touched."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update

from backend.cli.tasks import scheduled as tasks
from backend.domain.lifecycle import SCHEDULER, Actor, RetentionPolicy
from backend.infrastructure.sql.deletion import SqlDeletionUnitOfWork
from backend.infrastructure.sql.identity import memberships, users
from backend.infrastructure.sql.retention import SqlRetentionUnitOfWork
from backend.infrastructure.sql.scheduled import scheduled_work
from backend.infrastructure.sql.unit_of_work import SqlTenantUnitOfWork
from backend.infrastructure.storage import LocalMediaStorage
from backend.service import deletion, retention
from tests.integration.domain.conftest import API
from tests.integration.identity.conftest import signup_body
from tests.integration.lifecycle_data.conftest import (
    add_client_user,
    audit_events_of,
    registry_row,
    schema_exists,
    user_exists,
)
from tests.integration.lifecycle_data.test_retention import media_ids_in_db, media_items
from tests.owner import owner_engine


def trash_note(owner, tenant_id):
    with owner.connect() as connection:
        return connection.execute(
            select(scheduled_work.c.media_trash_since).where(scheduled_work.c.tenant_id == tenant_id)
        ).scalar_one_or_none()


def run_task(runtime, run_jobs, name: str) -> None:
    """Defer a periodic task by name, as the schedule would, and let the worker run it."""
    runtime.jobs.enqueue(name, queue=tasks.SCHEDULED_QUEUE)
    run_jobs()


def scheduler_events(owner, event: str) -> list:
    with owner.connect() as connection:
        return connection.execute(
            text(
                "SELECT tenant_id, target_id, outcome, metadata FROM shared.audit_events"
                " WHERE event = :e AND actor_role = 'system' ORDER BY id"
            ),
            {"e": event},
        ).all()


def test_deleting_media_through_the_api_notes_the_tenant_in_the_registry(
    client, runtime, make_tenant, worker_token
):
    tenant, other = make_tenant(), make_tenant()
    headers = worker_token(tenant)
    [item] = media_items(client, runtime, tenant, headers, [None])
    assert trash_note(owner_engine(), tenant.id) is None
    before = datetime.now(UTC)
    assert client.delete(f"{API}/media/{item}", headers=headers).status_code == 204
    noted = trash_note(owner_engine(), tenant.id)
    assert noted is not None and noted >= before - timedelta(seconds=1)
    # Another tenant's token cannot delete (or note) this tenant's media.
    assert client.delete(f"{API}/media/{item}", headers=worker_token(other)).status_code == 404
    assert trash_note(owner_engine(), other.id) is None


def test_retention_opens_only_the_tenants_with_media_past_retention(
    client, runtime, make_tenant, worker_token, settings
):
    owner = owner_engine()
    now = datetime.now(UTC)
    old = now - timedelta(days=settings.media_retention_days + 3)
    due, recent, clean = make_tenant(), make_tenant(), make_tenant()
    [_due_old, due_live] = media_items(client, runtime, due, worker_token(due), [old, None])
    [recent_item] = media_items(client, runtime, recent, worker_token(recent), [now - timedelta(days=1)])
    media_items(client, runtime, clean, worker_token(clean), [None])
    opened = []

    def tenant_uow(tenant):
        opened.append(tenant.id)
        return SqlTenantUnitOfWork(owner, tenant.schema_name)

    report = retention.apply_retention(
        now=now,
        policy=RetentionPolicy(settings.media_retention_days, settings.export_retention_days, 10_000),
        dry_run=False,
        actor=SCHEDULER,
        deletion_uow_factory=lambda: SqlDeletionUnitOfWork(owner),
        retention_uow_factory=lambda: SqlRetentionUnitOfWork(owner),
        tenant_uow_factory=tenant_uow,
        storage=LocalMediaStorage(settings.media_dir),
        export_files=type("NoExports", (), {"older_than": lambda self, cutoff: []})(),
        finish_deletions=False,
    )
    assert report.media_removed.get(str(due.id)) == 1
    assert set(opened) <= {due.id} | _other_due_tenants(owner, now, settings, exclude={due.id})
    assert recent.id not in opened and clean.id not in opened
    assert media_ids_in_db(owner, due) == {due_live}
    assert media_ids_in_db(owner, recent) == {recent_item}
    # The trash is empty again: the note goes (the next run will not open the tenant).
    assert trash_note(owner, due.id) is None
    assert trash_note(owner, recent.id) is not None


def _other_due_tenants(owner, now, settings, exclude) -> set:
    """Tenants an earlier test of the session left with media past retention."""
    cutoff = now - timedelta(days=settings.media_retention_days)
    with owner.connect() as connection:
        rows = connection.execute(
            select(scheduled_work.c.tenant_id).where(scheduled_work.c.media_trash_since < cutoff)
        ).scalars()
        return set(rows) - exclude


def test_the_trash_note_follows_the_oldest_item_left(client, runtime, make_tenant, worker_token, settings):
    owner = owner_engine()
    now = datetime.now(UTC)
    tenant = make_tenant()
    older, newer = now - timedelta(days=settings.media_retention_days + 2), now - timedelta(days=2)
    media_items(client, runtime, tenant, worker_token(tenant), [older, newer])
    assert trash_note(owner, tenant.id) == older
    retention.purge_due_media(
        now=now,
        policy=RetentionPolicy(settings.media_retention_days, 14, 365),
        dry_run=False,
        retention_uow_factory=lambda: SqlRetentionUnitOfWork(owner),
        tenant_uow_factory=lambda t: SqlTenantUnitOfWork(owner, t.schema_name),
        storage=LocalMediaStorage(settings.media_dir),
        failures=[],
        actor=SCHEDULER,
    )
    assert trash_note(owner, tenant.id) == newer


def test_the_retention_task_runs_in_the_worker_and_is_audited(
    client, runtime, run_jobs, make_tenant, worker_token, settings
):
    owner = owner_engine()
    tenant = make_tenant()
    old = datetime.now(UTC) - timedelta(days=settings.media_retention_days + 1)
    [item] = media_items(client, runtime, tenant, worker_token(tenant), [old])
    runs_before = len(scheduler_events(owner, "retention.applied"))
    run_task(runtime, run_jobs, tasks.RETENTION_TASK)
    assert item not in media_ids_in_db(owner, tenant)
    assert ("media.purged", "success") in audit_events_of(owner, tenant.id)
    assert len(scheduler_events(owner, "retention.applied")) == runs_before + 1


def test_the_due_purge_task_purges_only_deletions_past_their_grace_period(runtime, run_jobs, make_tenant):
    owner = owner_engine()
    now = datetime.now(UTC)
    due, waiting = make_tenant(), make_tenant()
    for tenant, grace in ((due, 0), (waiting, 30)):
        deletion.schedule_deletion(
            slug=tenant.slug, grace_days=grace, now=now, actor=Actor(), uow=SqlDeletionUnitOfWork(owner)
        )
    run_task(runtime, run_jobs, tasks.DUE_PURGES_TASK)
    assert registry_row(owner, due.id)["status"] == "deleted"
    assert not schema_exists(owner, due.schema_name)
    assert registry_row(owner, waiting.id)["status"] == "deletion_scheduled"
    assert schema_exists(owner, waiting.schema_name)
    assert audit_events_of(owner, due.id)[-1] == ("tenant.purged", "success")
    assert scheduler_events(owner, "tenant.due_purges")[-1].outcome == "success"


def age_user(owner, email: str, days: int) -> uuid.UUID:
    with owner.begin() as connection:
        return connection.execute(
            update(users)
            .where(users.c.email == email)
            .values(created_at=datetime.now(UTC) - timedelta(days=days))
            .returning(users.c.id)
        ).scalar_one()


def role_exists(owner, name: str) -> bool:
    with owner.connect() as connection:
        return (
            connection.execute(
                text("SELECT count(*) FROM pg_roles WHERE rolname = :n"), {"n": name}
            ).scalar_one()
            == 1
        )


def signed_up(client, owner, *, days_ago: int, verified: bool = False):
    body = signup_body()
    response = client.post("/api/v1/auth/signup", json=body)
    assert response.status_code == 201, response.json
    user_id = age_user(owner, body["email"], days_ago)
    if verified:
        with owner.begin() as connection:
            connection.execute(
                update(users).where(users.c.id == user_id).values(verified_at=datetime.now(UTC))
            )
    tenant = registry_row(owner, uuid.UUID(response.json["tenant"]["id"]))
    return user_id, tenant


def test_unverified_signups_past_retention_lose_user_workspace_schema_and_role(
    client, runtime, run_jobs, settings, ready_workspaces
):
    ready_workspaces(4)  # signup claims workspaces the worker built
    owner = owner_engine()
    days = settings.unverified_retention_days
    stale_user, stale = signed_up(client, owner, days_ago=days + 1)
    fresh_user, fresh = signed_up(client, owner, days_ago=days - 1)
    verified_user, verified = signed_up(client, owner, days_ago=days + 30, verified=True)
    # An old unverified owner whose workspace someone else belongs to: not a bare signup.
    shared_user, shared = signed_up(client, owner, days_ago=days + 1)
    add_client_user(
        owner, type("T", (), {"id": shared["id"], "schema_name": shared["schema_name"]})(), "Kept"
    )

    run_task(runtime, run_jobs, tasks.UNVERIFIED_TASK)

    assert not user_exists(owner, stale_user)
    assert registry_row(owner, stale["id"])["status"] == "deleted"
    assert not schema_exists(owner, stale["schema_name"]) and not role_exists(owner, stale["schema_name"])
    for user_id, tenant in ((fresh_user, fresh), (verified_user, verified), (shared_user, shared)):
        assert user_exists(owner, user_id)
        assert registry_row(owner, tenant["id"])["status"] == "active"
        assert schema_exists(owner, tenant["schema_name"]) and role_exists(owner, tenant["schema_name"])
    [removed] = [
        e for e in scheduler_events(owner, "auth.unverified_removed") if e.target_id == str(stale_user)
    ]
    assert removed.tenant_id == stale["id"] and removed.metadata == {"count": 1}
    with owner.connect() as connection:
        left = connection.execute(select(memberships.c.id).where(memberships.c.user_id == stale_user))
        assert left.first() is None
    # The address is free again: the person can sign up anew.
    run_task(runtime, run_jobs, tasks.UNVERIFIED_TASK)  # a second run finds nothing more to do
    assert registry_row(owner, fresh["id"])["status"] == "active"
