"""The worker process: `flask --app backend worker` runs the queued jobs (docs/jobs.md).

It holds the owner URL (MIGRATION_DATABASE_URL); the API only enqueues, as the runtime role.
Tasks are registered here and in backend/cli/tasks/ (one module per area), in the entrypoint
layer, because they call use cases: the API defers them by name (backend/infrastructure/jobs.py).
"""

from __future__ import annotations

import logging

import click
import procrastinate
from flask import Flask, current_app
from flask.cli import with_appcontext

from backend.cli.owner import owner_access
from backend.cli.spares import refill_spare_pool
from backend.cli.tasks import metrics as job_metrics
from backend.cli.tasks.mail import register_mail_tasks
from backend.cli.tasks.scheduled import register_scheduled_tasks
from backend.infrastructure.jobs import worker_app
from backend.service import tenants as tenants_service

log = logging.getLogger(__name__)


def register_tasks(jobs: procrastinate.App, flask_app: Flask, *, periodic: bool = True) -> procrastinate.App:
    """The tasks the worker runs, each in the Flask app's context (settings, engines), one
    module per area (backend/cli/tasks/). `periodic=False` leaves the schedule of the
    retention, purge and unverified-signup tasks out (the tests' `run_jobs`, which must not
    start a retention run of its own)."""
    register_provisioning_tasks(jobs, flask_app)
    register_mail_tasks(jobs, flask_app)
    register_scheduled_tasks(jobs, flask_app, periodic=periodic)
    return jobs


# The periodic refill: every minute, so the pool is back to SPARE_SCHEMAS within a minute of
# anything that emptied it (a burst of signups, a deploy's new head) even with no job asked.
SPARE_REFILL_CRON = "* * * * *"


def register_provisioning_tasks(jobs: procrastinate.App, flask_app: Flask) -> None:
    """The pool of spare workspaces, refilled here only (the API holds no owner role).

    One task, `refill_spares`, two ways in: periodic (procrastinate passes `timestamp`), and
    deferred by a signup that took the pool under SPARE_SCHEMAS or found it empty. The
    queueing lock keeps at most one waiting job, so a burst of signups costs one refill; the
    pool's advisory lock serialises refills that run at once (two workers, a deploy)."""

    @jobs.periodic(cron=SPARE_REFILL_CRON, periodic_id=tenants_service.REFILL_SPARES_TASK)
    @jobs.task(
        name=tenants_service.REFILL_SPARES_TASK,
        queue=tenants_service.PROVISIONING_QUEUE,
        queueing_lock=tenants_service.REFILL_SPARES_TASK,
    )
    def refill_spares(timestamp: int | None = None) -> None:
        with flask_app.app_context():
            # Asked for by a signup: at least one spare, even with SPARE_SCHEMAS=0 (the
            # signup that found none is waiting for it).
            if timestamp is None:
                refill_spare_pool(flask_app, reason="signup", at_least=1)
            else:
                refill_spare_pool(flask_app, reason="periodic")


def build_worker(flask_app: Flask, *, periodic: bool = True) -> procrastinate.App:
    return register_tasks(worker_app(owner_access(flask_app).url), flask_app, periodic=periodic)


@click.command("worker")
@click.option("--once", is_flag=True, help="Run the jobs waiting now, then exit (tests, cron).")
@click.option(
    "--no-schedule",
    is_flag=True,
    help="Do not defer the periodic tasks (retention, due purges, unverified signups) from this process.",
)
@with_appcontext
def worker(once: bool, no_schedule: bool) -> None:
    """Run queued jobs (mail, provisioning, retention, purges) until stopped (SIGTERM, Ctrl-C)."""
    app = current_app._get_current_object()
    jobs = build_worker(app, periodic=not no_schedule)
    port = app.extensions["saas"].settings.worker_metrics_port
    job_metrics.serve(port)
    log.info("worker started", extra={"once": once, "schedule": not no_schedule, "metrics_port": port})
    run_worker(jobs, once=once)


def run_worker(jobs: procrastinate.App, *, once: bool) -> None:
    """Runs the jobs, each attempt timed (backend/cli/tasks/metrics.py). Finished jobs are
    deleted: a mail job's arguments name a person."""
    jobs.run_worker(
        wait=not once,
        delete_jobs="successful",
        install_signal_handlers=not once,
        worker_middleware=[job_metrics.measure],
    )
