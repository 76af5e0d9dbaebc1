"""Changing the login email: asked with the password, it takes effect only once the new
address proves itself with a mailed single-use link; the old address is told at both steps.
When it takes effect, every token mailed to the old address (invitations, verification or
reset links) stops working, and the new address counts as verified."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from backend.core.passwords import verify_account_password
from backend.domain import audit as events
from backend.domain.errors import Conflict, Forbidden, Invalid, Unauthenticated
from backend.domain.identity import OneTimeTokenKind, Role, User, normalize_email
from backend.service.identity.common import MAIL_QUEUE, new_secret, public, queue_notice, send, token_digest
from backend.service.ports import JobQueue, Mailer, RegistryUnitOfWork

CONFIRM_PATH = "/confirm-email"
EMAIL_CHANGE_TASK = "mail_email_change"


def request_email_change(
    *,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    role: Role,
    password: str,
    new_email: str,
    now: datetime,
    ttl_s: int,
    uow: RegistryUnitOfWork,
    jobs: JobQueue,
    request_id: str | None = None,
) -> None:
    """Checks the password and the new address, then asks the worker to mail the new address
    its confirmation link (`mail_email_change`) and the old one a notice."""
    new_email = normalize_email(new_email)
    with uow:
        user = uow.users.get(user_id, for_update=True)
        if user is None:
            raise Unauthenticated("invalid_token")
        if not verify_account_password(user.password_hash, password):
            raise Forbidden("invalid_password", "the password is wrong")
        if new_email.casefold() == user.email.casefold():
            raise Invalid({"new_email": ["this is already your email address"]})
        if uow.users.id_by_email(new_email) is not None:
            raise Conflict("email_taken")
        uow.audit.record(
            events.EMAIL_CHANGE_REQUESTED,
            tenant_id=tenant_id,
            actor_user_id=user_id,
            actor_role=role.value,
            target_type="user",
            target_id=str(user_id),
            request_id=request_id,
        )
        uow.commit()
    expires_at = now + timedelta(seconds=ttl_s)
    jobs.enqueue(
        EMAIL_CHANGE_TASK,
        queue=MAIL_QUEUE,
        user_id=str(user_id),
        new_email=new_email,
        expires_at=expires_at.isoformat(),
        request_id=request_id,
    )
    queue_notice(
        jobs,
        to=user.email,
        subject="A change of your email address was requested",
        body=(
            "Someone signed in to your account asked to change its email address. It changes only "
            "once the new address is confirmed. If this was not you, change your password now.\n"
        ),
        request_id=request_id,
    )


def mail_email_change(
    *,
    user_id: uuid.UUID,
    new_email: str,
    expires_at: datetime,
    now: datetime,
    app_url: str,
    uow: RegistryUnitOfWork,
    mailer: Mailer,
) -> bool:
    """Draws the confirmation token and mails the link to the new address (in the worker); a
    request whose user went or whose address was taken meanwhile is dropped (False). A newer
    request, or a retried attempt, supersedes the earlier link."""
    with uow:
        user = uow.users.get(user_id, for_update=True)
        if user is None or expires_at <= now or uow.users.id_by_email(new_email) is not None:
            return False
        uow.one_time_tokens.expire_outstanding(OneTimeTokenKind.EMAIL_CHANGE, at=now, user_id=user_id)
        value, digest = new_secret()
        uow.one_time_tokens.add(
            kind=OneTimeTokenKind.EMAIL_CHANGE,
            token_hash=digest,
            expires_at=expires_at,
            user_id=user_id,
            email=new_email,
        )
        uow.commit()
    link = f"{app_url}{CONFIRM_PATH}?token={value}"
    send(
        mailer,
        to=new_email,
        subject="Confirm your new email address",
        body=f"Confirm that this is the new email address of your account:\n\n{link}\n",
    )
    return True


def confirm_email_change(
    *, token: str, now: datetime, uow: RegistryUnitOfWork, jobs: JobQueue, request_id: str | None = None
) -> User:
    with uow:
        record = uow.one_time_tokens.lock_by_hash(OneTimeTokenKind.EMAIL_CHANGE, token_digest(token))
        user = uow.users.get(record.user_id, for_update=True) if record and record.user_id else None
        if record is None or user is None or record.used_at is not None or not record.email:
            raise Unauthenticated("invalid_token")
        if record.expires_at <= now:
            raise Unauthenticated("token_expired")
        old_email = user.email
        uow.users.set_email(user.id, record.email)  # 409 email_taken if taken meanwhile
        uow.one_time_tokens.mark_used(record.id, now)
        uow.one_time_tokens.expire_addressed_to(old_email, now)
        for kind in (OneTimeTokenKind.PASSWORD_RESET, OneTimeTokenKind.EMAIL_VERIFICATION):
            uow.one_time_tokens.expire_outstanding(kind, at=now, user_id=user.id)
        uow.users.mark_verified(user.id, now)
        for membership in uow.memberships.for_user(user.id) or [None]:
            uow.audit.record(
                events.EMAIL_CHANGED,
                tenant_id=membership.tenant_id if membership else None,
                actor_user_id=user.id,
                target_type="user",
                target_id=str(user.id),
                request_id=request_id,
            )
        uow.commit()
    queue_notice(
        jobs,
        to=old_email,
        subject="Your email address was changed",
        body=(
            "The email address of your account was changed; this address no longer signs in. "
            "If this was not you, contact the workspace's support at once.\n"
        ),
        request_id=request_id,
    )
    return public(User(user.id, record.email, user.name, user.verified_at or now, user.created_at))
