"""The purge finishes a due deletion completely, whatever step a previous run crashed at,
and touches no other tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from backend.domain.errors import Conflict
from backend.domain.lifecycle import PURGE_STEPS, Actor
from backend.infrastructure.sql.deletion import SqlDeletionUnitOfWork
from backend.infrastructure.sql.identity import load_access, memberships, one_time_tokens, refresh_tokens
from backend.infrastructure.sql.tenants import tenants
from backend.infrastructure.storage import LocalMediaStorage
from backend.service import deletion
from tests.integration.lifecycle_data.conftest import (
    audit_events_of,
    count_rows,
    registry_row,
    schema_exists,
    table_rows,
    user_exists,
)
from tests.owner import owner_engine


class Crash(Exception):
    pass


def schedule_now(runtime, tenant) -> datetime:
    now = datetime.now(UTC)
    deletion.schedule_deletion(
        slug=tenant.slug,
        grace_days=0,
        now=now,
        actor=Actor(),
        uow=SqlDeletionUnitOfWork(owner_engine()),
    )
    return now


def purge(runtime, media_root, tenant, now, on_step=None, storage=None):
    return deletion.purge_tenant(
        tenant_id=tenant.id,
        now=now,
        actor=Actor(),
        uow_factory=lambda: SqlDeletionUnitOfWork(owner_engine(), runtime.runtime_role),
        storage=storage or LocalMediaStorage(media_root),
        on_step=on_step,
    )


def assert_fully_purged(owner, media_root, ws) -> None:
    tenant = ws.tenant
    assert not schema_exists(owner, tenant.schema_name)
    assert not (media_root / str(tenant.id)).exists()
    assert count_rows(owner, memberships, tenant_id=tenant.id) == 0
    assert count_rows(owner, refresh_tokens, tenant_id=tenant.id) == 0
    assert count_rows(owner, one_time_tokens, tenant_id=tenant.id) == 0
    row = registry_row(owner, tenant.id)
    assert row["status"] == "deleted"
    assert row["deleted_at"] is not None
    assert row["slug"] == f"deleted-{tenant.id.hex}" and row["name"] == ""
    assert row["schema_name"] == tenant.schema_name
    # Client-only users are gone; the worker (an account holder) keeps the account.
    for user_id in ws.client_user_ids:
        assert not user_exists(owner, user_id)
    assert user_exists(owner, ws.worker_id)
    # Nobody can come back in: no membership means no access record, hence no token.
    assert load_access(owner, ws.worker_id, tenant.id, uuid.uuid4()) is None
    events = audit_events_of(owner, tenant.id)
    assert ("tenant.purged", "success") in events
    assert ("tenant.deletion_scheduled", "success") in events


def assert_untouched(owner, media_root, ws, clients_before) -> None:
    tenant = ws.tenant
    assert schema_exists(owner, tenant.schema_name)
    assert table_rows(owner, tenant.schema_name, "clients") == clients_before
    assert sorted(p.name for p in (media_root / str(tenant.id)).iterdir()) == sorted(ws.media)
    assert count_rows(owner, memberships, tenant_id=tenant.id) == 4
    assert count_rows(owner, refresh_tokens, tenant_id=tenant.id) == 4
    assert count_rows(owner, one_time_tokens, tenant_id=tenant.id) == 4
    assert registry_row(owner, tenant.id)["status"] == "active"
    assert all(user_exists(owner, u) for u in ws.client_user_ids)


@pytest.mark.parametrize("crash_after", PURGE_STEPS)
def test_a_purge_that_crashed_after_any_step_finishes_on_rerun(
    crash_after, runtime, owner, media_root, workspace
):
    ws, bystander = workspace(), workspace()
    bystander_clients = table_rows(owner, bystander.tenant.schema_name, "clients")
    now = schedule_now(runtime, ws.tenant)

    def crash(step, count):
        if step == crash_after:
            raise Crash(step)

    with pytest.raises(Crash):
        purge(runtime, media_root, ws.tenant, now, on_step=crash)
    expected = "deleted" if crash_after == PURGE_STEPS[-1] else "deletion_scheduled"
    assert registry_row(owner, ws.tenant.id)["status"] == expected

    report = purge(runtime, media_root, ws.tenant, now)
    assert report.already_purged == (crash_after == PURGE_STEPS[-1])
    assert_fully_purged(owner, media_root, ws)
    assert_untouched(owner, media_root, bystander, bystander_clients)
    # A third run finds nothing left to do.
    assert purge(runtime, media_root, ws.tenant, now).already_purged


def test_a_step_that_fails_midway_is_audited_and_the_rerun_finishes(runtime, owner, media_root, workspace):
    ws = workspace()
    now = schedule_now(runtime, ws.tenant)

    class BrokenDisk(LocalMediaStorage):
        def delete_tenant(self, tenant_id):
            raise OSError("disk unavailable")

    with pytest.raises(OSError):
        purge(runtime, media_root, ws.tenant, now, storage=BrokenDisk(media_root))
    assert ("tenant.purge.delete_media", "failure") in audit_events_of(owner, ws.tenant.id)
    assert not schema_exists(owner, ws.tenant.schema_name)  # the earlier steps are done
    assert registry_row(owner, ws.tenant.id)["status"] == "deletion_scheduled"

    purge(runtime, media_root, ws.tenant, now)
    assert_fully_purged(owner, media_root, ws)


def test_users_with_another_membership_keep_their_account(runtime, owner, media_root, workspace):
    other = workspace()
    shared_email = f"shared-{other.tenant.slug}@example.com"
    from tests.integration.lifecycle_data.conftest import add_client_user

    _, shared_user = add_client_user(owner, other.tenant, "Shared", shared_email)
    ws = workspace(shared_with=shared_email)
    assert ws.client_user_ids[0] == shared_user
    now = schedule_now(runtime, ws.tenant)
    purge(runtime, media_root, ws.tenant, now)
    assert user_exists(owner, shared_user)
    assert count_rows(owner, memberships, user_id=shared_user) == 1
    assert not user_exists(owner, ws.client_user_ids[1])


def test_a_tenant_in_its_grace_period_is_not_purged(runtime, owner, media_root, workspace):
    ws = workspace()
    now = datetime.now(UTC)
    deletion.schedule_deletion(
        slug=ws.tenant.slug, grace_days=1, now=now, actor=Actor(), uow=SqlDeletionUnitOfWork(owner)
    )
    with pytest.raises(Conflict) as raised:
        purge(runtime, media_root, ws.tenant, now)
    assert raised.value.code == "deletion_not_due"
    assert schema_exists(owner, ws.tenant.schema_name)
    due = deletion.due_deletions(now=now, uow=SqlDeletionUnitOfWork(owner))
    assert ws.tenant.id not in {t.id for t in due}


def test_delete_now_purges_at_once(app, owner, media_root, workspace):
    ws = workspace()
    result = app.test_cli_runner().invoke(args=["tenants", "delete", "--slug", ws.tenant.slug, "--now"])
    assert result.exit_code == 0, result.output
    assert "drop_schema" in result.output and "purged" in result.output
    assert_fully_purged(owner, media_root, ws)


def test_delete_schedules_with_the_configured_grace_period(app, owner, make_tenant, settings):
    tenant = make_tenant()
    result = app.test_cli_runner().invoke(args=["tenants", "delete", "--slug", tenant.slug])
    assert result.exit_code == 0, result.output
    row = registry_row(owner, tenant.id)
    assert row["status"] == "deletion_scheduled"
    assert (row["deletion_due_at"] - datetime.now(UTC)).days in (
        settings.deletion_grace_days - 1,
        settings.deletion_grace_days,
    )
    assert schema_exists(owner, tenant.schema_name)


def test_delete_of_an_unknown_slug_fails_with_one_line(app):
    result = app.test_cli_runner().invoke(args=["tenants", "delete", "--slug", "no-such-tenant"])
    assert result.exit_code != 0
    assert "not_found" in result.output


def test_the_registry_refuses_a_tombstone_that_names_someone(owner, make_tenant):
    tenant = make_tenant()
    with pytest.raises(IntegrityError) as raised, owner.begin() as connection:
        connection.execute(update(tenants).where(tenants.c.id == tenant.id).values(status="deleted"))
    assert "ck_tenants_tombstone" in str(raised.value)
