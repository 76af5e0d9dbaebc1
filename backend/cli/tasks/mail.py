"""Mail tasks: the API enqueues, these deliver with retries and backoff (docs/jobs.md).

Jobs carry no secret: a mail with a link is enqueued as "mail X a link" and the token is drawn
here, so the queue never holds a live link; a retried attempt draws a new one, which supersedes
the previous. Their arguments name people: procrastinate's log lines lose them
(backend/core/logging.py) and finished jobs are deleted (backend/cli/worker.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import procrastinate
from flask import Flask

from backend.cli.owner import owner_access
from backend.domain.errors import Unavailable
from backend.infrastructure.mail import mailer_for
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service import identity as identity_service
from backend.service.identity import emails as email_service

MAIL_QUEUE = identity_service.MAIL_QUEUE


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


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def register_mail_tasks(jobs: procrastinate.App, flask_app: Flask) -> None:
    """Registers the mail tasks; each runs in the Flask app's context with the owner engine."""

    def in_app(run: Callable[..., object]) -> Callable[..., None]:
        def task(**arguments) -> None:
            with flask_app.app_context():
                rt = flask_app.extensions["saas"]
                owner = owner_access(flask_app)
                run(
                    rt=rt,
                    uow=SqlRegistryUnitOfWork(owner.engine, owner.runtime_role),
                    mailer=_RaisingMailer(mailer_for(rt.settings)),
                    now=datetime.now(UTC),
                    **arguments,
                )

        task.__name__ = run.__name__
        return task

    def define(name: str, run: Callable[..., object]) -> None:
        jobs.task(name=name, queue=MAIL_QUEUE, retry=MAIL_RETRY, pass_context=False)(in_app(run))

    def resend_verification(*, rt, uow, mailer, now, email: str, request_id: str | None = None) -> None:
        identity_service.resend_verification(
            email=email,
            now=now,
            verification_ttl_s=rt.settings.verification_ttl_s,
            app_url=rt.settings.app_url,
            uow=uow,
            mailer=mailer,
            request_id=request_id,
        )

    def password_reset_mail(*, rt, uow, mailer, now, email: str, request_id: str | None = None) -> None:
        identity_service.request_password_reset(
            email=email,
            now=now,
            reset_ttl_s=rt.settings.password_reset_ttl_s,
            app_url=rt.settings.app_url,
            uow=uow,
            mailer=mailer,
            request_id=request_id,
        )

    def mail_invitation(
        *,
        rt,
        uow,
        mailer,
        now,
        tenant_id: str,
        client_id: str,
        expires_at: str,
        request_id: str | None = None,
    ) -> None:
        identity_service.mail_invitation(
            tenant_id=uuid.UUID(tenant_id),
            client_id=uuid.UUID(client_id),
            expires_at=_parse_time(expires_at),
            now=now,
            app_url=rt.settings.app_url,
            uow=uow,
            mailer=mailer,
        )

    def mail_email_change(
        *, rt, uow, mailer, now, user_id: str, new_email: str, expires_at: str, request_id: str | None = None
    ) -> None:
        email_service.mail_email_change(
            user_id=uuid.UUID(user_id),
            new_email=new_email,
            expires_at=_parse_time(expires_at),
            now=now,
            app_url=rt.settings.app_url,
            uow=uow,
            mailer=mailer,
        )

    def send_notice(
        *, rt, uow, mailer, now, to: str, subject: str, body: str, request_id: str | None = None
    ) -> None:
        identity_service.send_mail(mailer, to=to, subject=subject, body=body)

    define(identity_service.RESEND_VERIFICATION_TASK, resend_verification)
    define(identity_service.PASSWORD_RESET_TASK, password_reset_mail)
    define(identity_service.INVITATION_TASK, mail_invitation)
    define(email_service.EMAIL_CHANGE_TASK, mail_email_change)
    define(identity_service.SEND_NOTICE_TASK, send_notice)
