"""The worker process: `flask --app backend worker` runs the queued jobs (docs/jobs.md).

It holds the owner URL (MIGRATION_DATABASE_URL); the API only enqueues, as the runtime role.
Tasks are registered here, in the entrypoint layer, because they call use cases: the API
defers them by name (backend/infrastructure/jobs.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import click
import procrastinate
from flask import Flask, current_app
from flask.cli import with_appcontext

from backend.cli.owner import owner_access, owner_engine
from backend.cli.spares import refill_spare_pool
from backend.domain.errors import Unavailable
from backend.infrastructure.jobs import worker_app
from backend.infrastructure.mail import mailer_for
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service import identity as identity_service
from backend.service import tenants as tenants_service

log = logging.getLogger(__name__)


class MailNotDelivered(RuntimeError):
    """Raised out of a task so the queue retries it; the use case itself only logs."""


class _RaisingMailer:
    """Lets the job fail (and be retried) where a request would only have logged."""

    def __init__(self, mailer) -> None:
        self._mailer = mailer

    def send(self, *, to: str, subject: str, body: str) -> None:
        try:
            self._mailer.send(to=to, subject=subject, body=body)
        except Unavailable as error:
            raise MailNotDelivered(subject) from error


# Mail: 6 attempts over about 2.5 minutes (5 s + 2^(n+1) s apart: 9, 13, 21, 37, 69 s), then the
# job stays `failed` in the queue for the runbook (docs/runbooks/jobs.md).
MAIL_RETRY = procrastinate.RetryStrategy(
    max_attempts=6, wait=5, exponential_wait=2, retry_exceptions={MailNotDelivered}
)


def register_tasks(jobs: procrastinate.App, flask_app: Flask) -> procrastinate.App:
    """The tasks the worker runs, each in the Flask app's context (settings, engines)."""
    register_provisioning_tasks(jobs, flask_app)

    @jobs.task(name=identity_service.RESEND_VERIFICATION_TASK, queue="mail", retry=MAIL_RETRY)
    def resend_verification(email: str, request_id: str | None = None) -> None:
        with flask_app.app_context():
            rt = flask_app.extensions["saas"]
            identity_service.resend_verification(
                email=email,
                now=datetime.now(UTC),
                verification_ttl_s=rt.settings.verification_ttl_s,
                app_url=rt.settings.app_url,
                uow=SqlRegistryUnitOfWork(owner_engine(flask_app), rt.runtime_role),
                mailer=_RaisingMailer(mailer_for(rt.settings)),
                request_id=request_id,
            )

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


def build_worker(flask_app: Flask) -> procrastinate.App:
    return register_tasks(worker_app(owner_access(flask_app).url), flask_app)


@click.command("worker")
@click.option("--once", is_flag=True, help="Run the jobs waiting now, then exit (tests, cron).")
@with_appcontext
def worker(once: bool) -> None:
    """Run queued jobs (mail, provisioning, retention, purges) until stopped (SIGTERM, Ctrl-C)."""
    app = current_app._get_current_object()
    jobs = build_worker(app)
    log.info("worker started", extra={"once": once})
    # Finished jobs are deleted: a mail job's arguments name a person.
    jobs.run_worker(wait=not once, delete_jobs="successful", install_signal_handlers=not once)
