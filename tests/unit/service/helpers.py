"""What the identity tests on fakes share: a fixed clock, a workspace with its owner, people
with a password, and the token inside a mailed link."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import cache
from urllib.parse import parse_qs, urlparse

from backend.core.passwords import hash_password
from backend.domain.identity import Role
from backend.domain.tenants import Tenant
from backend.service import tenants

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
APP_URL = "https://app.example"


@cache
def password_hash(password: str = PASSWORD) -> str:
    """argon2id costs ~25 ms: each distinct password is hashed once per test run."""
    return hash_password(password)


def workspace(
    uow, slug: str = "acme", owner: str = "owner@example.com", password: str | None = PASSWORD
) -> Tenant:
    """A provisioned workspace whose owner (a worker) has `password` (None: no password yet)."""
    existing = uow.users.by_email(owner)
    return tenants.provision_tenant(
        slug=slug,
        name=slug.title(),
        owner_email=owner,
        owner_name="Owner",
        owner_password_hash=None if existing or password is None else password_hash(password),
        trial_days=14,
        now=NOW,
        uow=uow,
    )


def person(uow, email: str, password: str | None = PASSWORD, *, verified: bool = True) -> uuid.UUID:
    """A user with no workspace yet; committed."""
    user_id = uuid.uuid4()
    with uow:
        uow.users.add(
            user_id, email, "Person", password_hash(password) if password else None, NOW if verified else None
        )
        uow.commit()
    return user_id


def join(uow, user_id: uuid.UUID, tenant: Tenant, role: Role = Role.WORKER, client_id=None) -> None:
    with uow:
        uow.memberships.add(user_id=user_id, tenant_id=tenant.id, role=role, client_id=client_id)
        uow.commit()


def owner_id(uow, email: str = "owner@example.com") -> uuid.UUID:
    return uow.users.by_email(email).id


def link_token(message: dict) -> str:
    """The `token` query parameter of the link in a mailed message."""
    link = next(line for line in message["body"].splitlines() if line.startswith("https://"))
    return parse_qs(urlparse(link).query)["token"][0]


def events(uow, name: str) -> list[dict]:
    return [fields for event, fields in uow.audit.events if event == name]


def deliver(uow, jobs, mailer, now=NOW) -> None:
    """Runs the queued mail jobs as the worker does (backend/cli/tasks/mail.py): the request's
    half only enqueued them; this half re-checks, draws any link and mails."""
    from backend.service.identity import accounts, emails, invitations, passwords
    from backend.service.identity.common import SEND_NOTICE_TASK, send

    for task, queue, arguments in jobs.jobs:
        assert queue == "mail", task
        if task == SEND_NOTICE_TASK:
            send(mailer, to=arguments["to"], subject=arguments["subject"], body=arguments["body"])
        elif task == emails.EMAIL_CHANGE_TASK:
            emails.mail_email_change(
                user_id=uuid.UUID(arguments["user_id"]),
                new_email=arguments["new_email"],
                expires_at=datetime.fromisoformat(arguments["expires_at"]),
                now=now,
                app_url=APP_URL,
                uow=uow,
                mailer=mailer,
            )
        elif task == invitations.INVITATION_TASK:
            invitations.mail_invitation(
                tenant_id=uuid.UUID(arguments["tenant_id"]),
                client_id=uuid.UUID(arguments["client_id"]),
                expires_at=datetime.fromisoformat(arguments["expires_at"]),
                now=now,
                app_url=APP_URL,
                uow=uow,
                mailer=mailer,
            )
        elif task == passwords.PASSWORD_RESET_TASK:
            passwords.request_password_reset(
                email=arguments["email"], now=now, reset_ttl_s=900, app_url=APP_URL, uow=uow, mailer=mailer
            )
        elif task == accounts.RESEND_VERIFICATION_TASK:
            accounts.resend_verification(
                email=arguments["email"],
                now=now,
                verification_ttl_s=3600,
                app_url=APP_URL,
                uow=uow,
                mailer=mailer,
            )
        else:  # pragma: no cover - a new mail task gets its line here
            raise AssertionError(f"no worker half for {task}")
    jobs.jobs.clear()
