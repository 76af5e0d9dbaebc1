"""The job worker killed (SIGKILL) in the middle of a periodic task, then the queue recovers
(issue 14 item 4): the stalled job is put back by `retry_stalled_jobs` once its worker's
heartbeat is a minute old, runs again from where its last committed step left it, and
finishes. Nothing is lost (the work is done in the end), nothing half-done is visible (no
schema without its registry row, no media row without its file), and nothing is repeated that
must not be (one purge record per tenant, one media record per tenant).

The kill lands at a known point, as for the operator commands (killing.py): the worker blocks
behind a lock this test holds on a table it needs halfway through."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from backend.cli.tasks import scheduled as tasks
from backend.core.tenancy import quoted_schema
from backend.domain.lifecycle import OPERATOR
from backend.infrastructure.sql.deletion import SqlDeletionUnitOfWork
from backend.service import deletion
from tests.integration.faults.killing import kill_command_when_blocked, orphans, worker_command
from tests.integration.faults.test_operator_kills import filled, registry_row, schema_exists
from tests.integration.lifecycle_data.test_retention import media_files, media_ids_in_db, media_items
from tests.owner import owner_engine

pytestmark = pytest.mark.slow
KILLED = -signal.SIGKILL


def job_of(owner, task_name: str):
    with owner.connect() as connection:
        return connection.execute(
            text(
                "SELECT id, status::text AS status, worker_id FROM jobs.procrastinate_jobs"
                " WHERE task_name = :t"
            ),
            {"t": task_name},
        ).all()


def a_minute_later(owner, worker_id: int) -> None:
    """The killed worker's last heartbeat, as it looks a minute after the kill."""
    with owner.begin() as connection:
        connection.execute(
            text(
                "UPDATE jobs.procrastinate_workers SET last_heartbeat = now() - interval '2 minutes'"
                " WHERE id = :id"
            ),
            {"id": worker_id},
        )


def killed_then_recovered(runtime, run_jobs, settings, task: str, table: str, mode: str) -> None:
    owner = owner_engine()
    runtime.jobs.enqueue(task, queue=tasks.SCHEDULED_QUEUE)
    killed = kill_command_when_blocked(settings, owner, table, mode, worker_command("--once"))
    assert killed.returncode == KILLED
    [stalled] = job_of(owner, task)
    assert stalled.status == "doing"  # cut short: nobody will finish it on their own
    return stalled


def recover(runtime, run_jobs, stalled, task: str) -> None:
    owner = owner_engine()
    a_minute_later(owner, stalled.worker_id)
    runtime.jobs.enqueue(tasks.STALLED_TASK, queue=tasks.SCHEDULED_QUEUE)
    run_jobs()
    assert job_of(owner, task) == [], "the job ran again to success (finished jobs are deleted)"


def events(owner, tenant_id, event: str) -> int:
    with owner.connect() as connection:
        return connection.execute(
            text("SELECT count(*) FROM shared.audit_events WHERE tenant_id = :t AND event = :e"),
            {"t": tenant_id, "e": event},
        ).scalar_one()


def test_a_due_purge_killed_while_dropping_the_schema_is_finished_once(
    settings, runtime, run_jobs, client, make_tenant, worker_token
):
    owner = owner_engine()
    tenant = make_tenant()
    filled(client, tenant, worker_token(tenant))
    media_dir = settings.media_dir / str(tenant.id)
    deletion.schedule_deletion(
        slug=tenant.slug,
        grace_days=0,
        now=datetime.now(UTC),
        actor=OPERATOR,
        uow=SqlDeletionUnitOfWork(owner),
    )
    before = orphans(owner)
    # Tokens revoked (committed), then DROP SCHEMA waits for our lock on one of its tables.
    stalled = killed_then_recovered(
        runtime,
        run_jobs,
        settings,
        tasks.DUE_PURGES_TASK,
        f"{quoted_schema(tenant.schema_name)}.clients",
        "ACCESS SHARE",
    )
    assert registry_row(runtime, tenant_id=tenant.id).status == "deletion_scheduled"
    assert schema_exists(runtime, tenant.schema_name) and any(media_dir.iterdir())
    assert orphans(owner) == before

    recover(runtime, run_jobs, stalled, tasks.DUE_PURGES_TASK)
    assert registry_row(runtime, tenant_id=tenant.id).status == "deleted"
    assert not schema_exists(runtime, tenant.schema_name)
    assert not media_dir.exists() or not any(media_dir.iterdir())
    assert orphans(owner) == before
    assert events(owner, tenant.id, "tenant.purged") == 1
    assert events(owner, tenant.id, "tenant.purge.drop_schema") == 1


def test_a_retention_run_killed_between_two_tenants_resumes_with_the_second(
    settings, runtime, run_jobs, client, make_tenant, worker_token
):
    owner = owner_engine()
    now = datetime.now(UTC)
    first, second = make_tenant(), make_tenant()
    # Older than anything another test left: these two are the first the run takes, in order.
    [first_old, first_live] = media_items(
        client, runtime, first, worker_token(first), [now - timedelta(days=5000), None]
    )
    [second_old] = media_items(client, runtime, second, worker_token(second), [now - timedelta(days=4999)])
    stalled = killed_then_recovered(
        runtime,
        run_jobs,
        settings,
        tasks.RETENTION_TASK,
        f"{quoted_schema(second.schema_name)}.media",
        "ACCESS EXCLUSIVE",
    )
    # The first tenant is done and recorded; the second is untouched, row and file.
    assert media_ids_in_db(owner, first) == {first_live}
    assert media_files(settings, first) == [first_live]
    assert events(owner, first.id, "media.purged") == 1
    assert media_ids_in_db(owner, second) == {second_old}
    assert media_files(settings, second) == [second_old]
    assert events(owner, second.id, "media.purged") == 0

    recover(runtime, run_jobs, stalled, tasks.RETENTION_TASK)
    assert media_ids_in_db(owner, second) == set()
    assert events(owner, first.id, "media.purged") == 1, "the first tenant is not purged or recorded twice"
    assert events(owner, second.id, "media.purged") == 1
    assert media_ids_in_db(owner, first) == {first_live}  # a live item is never touched
    assert first_old not in media_files(settings, first)
