"""Periodic tasks: retention, due purges and unverified signups (docs/jobs.md).

Each runs a use case that finds its due work in the registry's indexes (no tenant schema is
opened unless something in it is due), is idempotent (every step re-checks and commits on its
own) and is resumable: a run killed anywhere is finished by the next one. The schedule is
procrastinate's periodic deferrer, in every worker process; the database keeps two workers from
deferring the same tick twice, the queueing lock keeps a run from being queued while another
waits, and the task lock keeps two runs of one task from overlapping.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime

import procrastinate
from flask import Flask

from backend.cli.owner import owner_access
from backend.domain.lifecycle import SCHEDULER, RetentionPolicy
from backend.infrastructure.sql.deletion import SqlDeletionUnitOfWork
from backend.infrastructure.sql.retention import SqlRetentionUnitOfWork
from backend.infrastructure.sql.unit_of_work import SqlTenantUnitOfWork
from backend.infrastructure.storage import LocalExportFiles, LocalMediaStorage
from backend.service import deletion, retention, unverified

log = logging.getLogger(__name__)

SCHEDULED_QUEUE = "scheduled"
RETENTION_TASK = "apply_retention"
DUE_PURGES_TASK = "purge_due_tenants"
UNVERIFIED_TASK = "remove_unverified_signups"
STALLED_TASK = "retry_stalled_jobs"
# A worker sends a heartbeat every 10 s: one silent for a minute was killed (SIGKILL, OOM, a
# lost machine) and its `doing` jobs would otherwise stay so for ever. A periodic task's job
# also holds its task lock, which would block every later run of that task.
STALLED_AFTER_S = 60

# When (cron, UTC): retention once a day at a quiet hour; deletions and unverified signups
# each hour, so nothing outlives its date by more than an hour.
SCHEDULE = {
    RETENTION_TASK: "17 3 * * *",
    DUE_PURGES_TASK: "7 * * * *",
    UNVERIFIED_TASK: "37 * * * *",
    STALLED_TASK: "*/5 * * * *",
}


class ScheduledRunFailed(RuntimeError):
    """Some tenants failed: the job is marked failed (visible in /metrics and the runbook);
    the others were done, and the next run retries the failed ones."""


class _Wiring:
    """The owner-role adapters a periodic use case needs, from the Flask app's runtime."""

    def __init__(self, flask_app: Flask) -> None:
        self.owner = owner_access(flask_app)
        self.settings = flask_app.extensions["saas"].settings

    def deletion_uow(self) -> SqlDeletionUnitOfWork:
        return SqlDeletionUnitOfWork(self.owner.engine, self.owner.runtime_role)

    def retention_uow(self) -> SqlRetentionUnitOfWork:
        return SqlRetentionUnitOfWork(self.owner.engine, self.owner.runtime_role)

    def tenant_uow(self, tenant) -> SqlTenantUnitOfWork:
        return SqlTenantUnitOfWork(self.owner.engine, tenant.schema_name)

    def storage(self) -> LocalMediaStorage:
        return LocalMediaStorage(self.settings.media_dir)

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            media_days=self.settings.media_retention_days,
            export_days=self.settings.export_retention_days,
            audit_days=self.settings.audit_retention_days,
        )


def run_retention(wiring: _Wiring, now: datetime) -> retention.RetentionReport:
    """Media past retention (only the tenants the registry names), old export archives, old
    audit events; audited as `retention.applied`. Due deletions are a task of their own."""
    return retention.apply_retention(
        now=now,
        policy=wiring.policy(),
        dry_run=False,
        actor=SCHEDULER,
        deletion_uow_factory=wiring.deletion_uow,
        retention_uow_factory=wiring.retention_uow,
        tenant_uow_factory=wiring.tenant_uow,
        storage=wiring.storage(),
        export_files=LocalExportFiles(wiring.settings.exports_dir),
        finish_deletions=False,
    )


def run_due_purges(wiring: _Wiring, now: datetime) -> deletion.DuePurgeReport:
    """Workspaces past their deletion grace period; audited per step and as a run."""
    return deletion.purge_due_tenants(
        now=now, actor=SCHEDULER, uow_factory=wiring.deletion_uow, storage=wiring.storage()
    )


def run_unverified_removal(wiring: _Wiring, now: datetime) -> unverified.UnverifiedReport:
    """Signups never verified within UNVERIFIED_RETENTION_DAYS: user, workspace, schema, role."""
    return unverified.remove_unverified_signups(
        now=now,
        retention_days=wiring.settings.unverified_retention_days,
        actor=SCHEDULER,
        retention_uow_factory=wiring.retention_uow,
        deletion_uow_factory=wiring.deletion_uow,
        storage=wiring.storage(),
    )


RUNNERS = {
    RETENTION_TASK: run_retention,
    DUE_PURGES_TASK: run_due_purges,
    UNVERIFIED_TASK: run_unverified_removal,
}


def register_scheduled_tasks(jobs: procrastinate.App, flask_app: Flask, *, periodic: bool = True) -> None:
    """Registers the periodic tasks and the retry of stalled jobs; with `periodic`, also their
    schedule."""
    for name, runner in RUNNERS.items():
        task = jobs.task(
            name=name,
            queue=SCHEDULED_QUEUE,
            lock=name,  # two runs of one task never overlap
            queueing_lock=name,  # and at most one waits
            pass_context=False,
        )(_in_app(flask_app, name, runner))
        if periodic:
            jobs.periodic(cron=SCHEDULE[name], periodic_id=name)(task)

    async def retry_stalled_jobs(timestamp: int | None = None) -> None:
        """Puts the jobs of dead workers back in the queue; every task is idempotent, so the
        job that was cut short runs again from where its last committed step left it."""
        for job in await jobs.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_S):
            log.warning("retrying a stalled job", extra={"job_id": job.id, "task": job.task_name})
            await jobs.job_manager.retry_job(job)

    stalled = jobs.task(name=STALLED_TASK, queue=SCHEDULED_QUEUE, queueing_lock=STALLED_TASK)(
        retry_stalled_jobs
    )
    if periodic:
        jobs.periodic(cron=SCHEDULE[STALLED_TASK], periodic_id=STALLED_TASK)(stalled)


def _in_app(flask_app: Flask, name: str, runner):
    def run(timestamp: int | None = None) -> None:
        """`timestamp`: the tick the periodic deferrer scheduled (absent when deferred by hand)."""
        with flask_app.app_context():
            report = runner(_Wiring(flask_app), datetime.now(UTC))
        summary = _summary(report)
        log.info("scheduled run finished", extra={"task": name, **summary})
        if summary.get("failures"):
            raise ScheduledRunFailed(f"{name}: {len(summary['failures'])} failed; the next run retries them")

    run.__name__ = name
    return run


def _summary(report) -> dict:
    """Counts, and the one-line failures (tenant and user ids, never a name or an address)."""
    out: dict = {}
    for key, value in asdict(report).items():
        out[key] = value if key == "failures" else (len(value) if isinstance(value, list | dict) else value)
    return out
