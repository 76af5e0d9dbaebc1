"""Accounts: signup (a worker and their workspace), email verification, the user record."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from backend.core.passwords import hash_password
from backend.domain import audit as events
from backend.domain.errors import Conflict, Invalid, NotFound, Unauthenticated, Unavailable
from backend.domain.identity import (
    OneTimeTokenKind,
    Role,
    User,
    normalize_email,
    validate_password,
    validate_person_name,
    workspace_slug_from_name,
)
from backend.domain.tenants import Tenant, validate_slug, validate_workspace_name
from backend.service.identity.common import MAIL_QUEUE, new_secret, public, send, token_digest
from backend.service.ports import JobQueue, Mailer, RegistryUnitOfWork
from backend.service.tenants import provision_tenant, request_spare_refill

log = logging.getLogger(__name__)

VERIFY_PATH = "/verify-email"
RESEND_VERIFICATION_TASK = "resend_verification"  # mails a fresh link to an unverified account
GENERATED_SLUG_ATTEMPTS = 3


@dataclass(frozen=True)
class SignupResult:
    user: User
    tenant: Tenant


def signup(
    *,
    email: str,
    password: str,
    name: str,
    workspace_name: str,
    workspace_slug: str | None,
    trial_days: int,
    now: datetime,
    uow: RegistryUnitOfWork,
    jobs: JobQueue,
    spare_target: int,
    request_id: str | None = None,
) -> SignupResult:
    """Creates an unverified worker owning a new workspace on trial (all or nothing), then
    asks the worker to mail the verification link (the `resend_verification` task: the token
    is drawn there, delivery is retried there). The workspace is a spare claimed from the pool:
    signup never builds a schema (it runs as the runtime role). No spare ready: `Unavailable`
    (503 `tenant_unavailable` + Retry-After), nothing written, and the worker is asked for a
    refill; the client signs up again after Retry-After. A claim that leaves fewer than
    `spare_target` ready asks for a refill too; asking never fails the signup."""
    email = normalize_email(email)
    validate_password(password, email=email)
    name = validate_person_name(name)
    workspace_name = validate_workspace_name(workspace_name)
    if workspace_slug:
        validate_slug(workspace_slug)
    password_hash = hash_password(password)
    try:
        tenant = _provision_workspace(
            slug=workspace_slug,
            workspace_name=workspace_name,
            email=email,
            name=name,
            password_hash=password_hash,
            trial_days=trial_days,
            now=now,
            uow=uow,
            request_id=request_id,
            build_schema=False,
        )
    except Unavailable:
        request_spare_refill(jobs=jobs)
        raise
    with uow:
        user = uow.users.by_email(email)
        ready_left = uow.schemas.ready_spares()
        uow.audit.record(
            events.SIGNUP,
            tenant_id=tenant.id,
            actor_user_id=user.id,
            actor_role=Role.WORKER.value,
            target_type="user",
            target_id=str(user.id),
            request_id=request_id,
        )
        uow.commit()
    if ready_left < spare_target:
        request_spare_refill(jobs=jobs)
    _request_verification_mail(jobs, user.email, request_id)
    return SignupResult(user=public(user), tenant=tenant)


def _request_verification_mail(jobs: JobQueue, email: str, request_id: str | None) -> None:
    """After the commit: a job for a rolled-back signup would mail a link to nobody. Never
    raises: a queue that cannot be written to (or a crash between the two) leaves an unverified
    account whose owner asks for a resend; the signup stands (a warning in the log)."""
    try:
        jobs.enqueue(RESEND_VERIFICATION_TASK, queue=MAIL_QUEUE, email=email, request_id=request_id)
    except Exception as error:  # noqa: BLE001 - whatever the queue's failure, the signup stands
        log.warning("verification mail not enqueued: %s", type(error).__name__)


def _provision_workspace(
    *, slug: str | None, workspace_name: str, email: str, name: str, password_hash: str, **common
) -> Tenant:
    def provision(candidate: str) -> Tenant:
        return provision_tenant(
            slug=candidate,
            name=workspace_name,
            owner_email=email,
            owner_name=name,
            owner_password_hash=password_hash,
            **common,
        )

    if slug:
        return provision(slug)
    # No slug asked for: the name's slug, then the same with a random suffix if taken.
    candidates = [workspace_slug_from_name(workspace_name)] + [
        workspace_slug_from_name(workspace_name, secrets.token_hex(3)) for _ in range(GENERATED_SLUG_ATTEMPTS)
    ]
    for candidate in candidates:
        try:
            validate_slug(candidate)
        except Invalid:
            continue
        try:
            return provision(candidate)
        except Conflict as conflict:
            if conflict.code != "slug_taken":
                raise
    raise Conflict("slug_taken")


def _issue_verification(
    uow: RegistryUnitOfWork, user: User, tenant_id: uuid.UUID | None, now: datetime, ttl_s: int
) -> str:
    uow.one_time_tokens.expire_outstanding(OneTimeTokenKind.EMAIL_VERIFICATION, at=now, user_id=user.id)
    value, digest = new_secret()
    uow.one_time_tokens.add(
        kind=OneTimeTokenKind.EMAIL_VERIFICATION,
        token_hash=digest,
        expires_at=now + timedelta(seconds=ttl_s),
        user_id=user.id,
        tenant_id=tenant_id,
        email=user.email,
    )
    return value


def _send_verification(mailer: Mailer, to: str, value: str, app_url: str) -> None:
    link = f"{app_url}{VERIFY_PATH}?token={value}"
    body = f"Confirm your email address to start using your workspace:\n\n{link}\n"
    send(mailer, to=to, subject="Confirm your email address", body=body)


def verify_email(
    *, token: str, now: datetime, uow: RegistryUnitOfWork, request_id: str | None = None
) -> User:
    """Marks the user's email as verified with a single-use, expiring token."""
    with uow:
        record = uow.one_time_tokens.lock_by_hash(OneTimeTokenKind.EMAIL_VERIFICATION, token_digest(token))
        user = uow.users.get(record.user_id, for_update=True) if record and record.user_id else None
        if record is None or user is None:
            raise Unauthenticated("invalid_token")
        if user.verified_at is not None or record.used_at is not None:
            raise Conflict("already_verified")
        if record.expires_at <= now:
            raise Unauthenticated("token_expired")
        uow.one_time_tokens.mark_used(record.id, now)
        verified = _mark_verified(uow, user, record.tenant_id, now, "token", request_id)
        uow.commit()
    return verified


def verify_worker_by_operator(*, email: str, now: datetime, uow: RegistryUnitOfWork) -> User:
    """Marks a worker's email as verified on an operator's word."""
    with uow:
        user = uow.users.by_email(email.strip(), for_update=True)
        if user is None:
            raise NotFound("not_found", "no user with that email")
        if user.verified_at is not None:
            raise Conflict("already_verified")
        workspaces = [m.tenant_id for m in uow.memberships.for_user(user.id) if m.role is Role.WORKER]
        verified = _mark_verified(uow, user, workspaces[0] if workspaces else None, now, "operator", None)
        uow.commit()
    return verified


def _mark_verified(
    uow: RegistryUnitOfWork,
    user: User,
    tenant_id: uuid.UUID | None,
    now: datetime,
    reason: str,
    request_id: str | None,
) -> User:
    uow.users.mark_verified(user.id, now)
    uow.one_time_tokens.expire_outstanding(OneTimeTokenKind.EMAIL_VERIFICATION, at=now, user_id=user.id)
    uow.audit.record(
        events.VERIFIED,
        tenant_id=tenant_id,
        actor_user_id=user.id,
        target_type="user",
        target_id=str(user.id),
        request_id=request_id,
        metadata={"reason": reason},
    )
    return User(user.id, user.email, user.name, now, user.created_at)


def request_verification_resend(*, email: str, jobs: JobQueue, request_id: str | None = None) -> None:
    """Asks the worker to mail a fresh link (`resend_verification` runs there). The request does
    the same thing for every address, known, verified or not: one enqueue, no lookup, so
    neither the answer nor its timing tells whether an unverified account exists."""
    jobs.enqueue(RESEND_VERIFICATION_TASK, queue=MAIL_QUEUE, email=email.strip(), request_id=request_id)


def resend_verification(
    *,
    email: str,
    now: datetime,
    verification_ttl_s: int,
    app_url: str,
    uow: RegistryUnitOfWork,
    mailer: Mailer,
    request_id: str | None = None,
) -> None:
    """Mails a fresh verification link to an unverified user; nothing for anyone else.
    Runs in the worker (signup and request_verification_resend enqueue it); a retried
    attempt draws a new link, which supersedes the previous one."""
    with uow:
        user = uow.users.by_email(email.strip())
        if user is None or user.verified_at is not None:
            return
        # The link verifies the owner of a workspace: its verification is that workspace's event.
        owned = [m.tenant_id for m in uow.memberships.for_user(user.id) if m.role is Role.WORKER]
        value = _issue_verification(uow, user, owned[0] if owned else None, now, verification_ttl_s)
        uow.audit.record(
            events.VERIFICATION_SENT,
            actor_user_id=user.id,
            target_type="user",
            target_id=str(user.id),
            request_id=request_id,
        )
        uow.commit()
    _send_verification(mailer, user.email, value, app_url)


def get_user(*, user_id: uuid.UUID, uow: RegistryUnitOfWork) -> User:
    """Returns the user's public record."""
    with uow:
        user = uow.users.get(user_id)
    if user is None:
        raise NotFound()
    return public(user)
