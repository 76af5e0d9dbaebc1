"""Passwords: the forgotten-password reset (also how a CLI-provisioned owner sets a first
password) and the change of a known password.

Reset request: the API only enqueues (`request_password_reset_mail`), the same one INSERT
whatever the email, so neither the answer nor its time tells whether an account exists; the
worker looks the address up, draws the token and mails it (`request_password_reset`, also
the operator's `tenants send-password-reset`).
The mailed token is single use, short lived, stored as its SHA-256 and bound to the address
it was sent to: once the email changes, an outstanding link stops working.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from backend.core.passwords import hash_password, verify_account_password
from backend.domain import audit as events
from backend.domain.errors import Forbidden, Unauthenticated
from backend.domain.identity import OneTimeTokenKind, Role, User, validate_password
from backend.service.identity.common import MAIL_QUEUE, new_secret, public, send, token_digest
from backend.service.ports import JobQueue, Mailer, RegistryUnitOfWork

RESET_PATH = "/reset-password"
PASSWORD_RESET_TASK = "password_reset_mail"


def request_password_reset_mail(*, email: str, jobs: JobQueue, request_id: str | None = None) -> None:
    """Asks the worker to mail a reset link (`request_password_reset` runs there): one enqueue
    for every address, no lookup in the request."""
    jobs.enqueue(PASSWORD_RESET_TASK, queue=MAIL_QUEUE, email=email.strip(), request_id=request_id)


def request_password_reset(
    *,
    email: str,
    now: datetime,
    reset_ttl_s: int,
    app_url: str,
    uow: RegistryUnitOfWork,
    mailer: Mailer,
    request_id: str | None = None,
) -> bool:
    """Mails a reset link when the account exists (in the worker, or the operator's command);
    the result (whether an account was found) is for the operator's command only."""
    value, digest = new_secret()  # drawn on both paths: the same work
    with uow:
        user = uow.users.by_email(email.strip())
        if user is None:
            uow.audit.record(
                events.PASSWORD_RESET_REQUESTED,
                request_id=request_id,
                outcome=events.FAILURE,
                metadata={"reason": "unknown_email"},
            )
            uow.commit()
            return False
        uow.one_time_tokens.expire_outstanding(OneTimeTokenKind.PASSWORD_RESET, at=now, user_id=user.id)
        uow.one_time_tokens.add(
            kind=OneTimeTokenKind.PASSWORD_RESET,
            token_hash=digest,
            expires_at=now + timedelta(seconds=reset_ttl_s),
            user_id=user.id,
            email=user.email,
        )
        uow.audit.record(
            events.PASSWORD_RESET_REQUESTED,
            actor_user_id=user.id,
            target_type="user",
            target_id=str(user.id),
            request_id=request_id,
        )
        uow.commit()
    first = user.password_hash is None
    _send_reset(mailer, user.email, value, app_url, ttl_s=reset_ttl_s, first=first)
    return True


def _send_reset(mailer: Mailer, to: str, value: str, app_url: str, *, ttl_s: int, first: bool) -> None:
    link = f"{app_url}{RESET_PATH}?token={value}"
    minutes = max(1, ttl_s // 60)
    if first:
        subject = "Set your password"
        intro = "Choose the password of your account with this link"
    else:
        subject = "Reset your password"
        intro = "Someone asked to reset the password of your account. If it was you, use this link"
    body = (
        f"{intro} (valid {minutes} minutes, once):\n\n{link}\n\n"
        "If you did not ask for this, ignore this message: nothing changes.\n"
    )
    send(mailer, to=to, subject=subject, body=body)


def reset_password(
    *, token: str, password: str, now: datetime, uow: RegistryUnitOfWork, request_id: str | None = None
) -> User:
    """Sets a new password with a mailed reset token; every session of the user ends (all
    workspaces). Receiving the link proves the address, so an unverified email becomes verified."""
    with uow:
        record = uow.one_time_tokens.lock_by_hash(OneTimeTokenKind.PASSWORD_RESET, token_digest(token))
        user = uow.users.get(record.user_id, for_update=True) if record and record.user_id else None
        if record is None or user is None or record.used_at is not None:
            raise Unauthenticated("invalid_token")
        if (record.email or "").casefold() != user.email.casefold():
            raise Unauthenticated("invalid_token")  # sent to an address the account no longer has
        if record.expires_at <= now:
            raise Unauthenticated("token_expired")
        validate_password(password, email=user.email)
        uow.users.set_password_hash(user.id, hash_password(password))
        uow.one_time_tokens.mark_used(record.id, now)
        uow.one_time_tokens.expire_outstanding(OneTimeTokenKind.PASSWORD_RESET, at=now, user_id=user.id)
        ended = uow.refresh_tokens.revoke_all_for_user(user.id, now)
        verified_at = user.verified_at
        if verified_at is None:
            uow.users.mark_verified(user.id, now)
            verified_at = now
        _record_everywhere(uow, user.id, events.PASSWORD_RESET, request_id, {"count": ended})
        uow.commit()
    return public(User(user.id, user.email, user.name, verified_at, user.created_at))


def change_password(
    *,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    role: Role,
    session_id: uuid.UUID | None,
    current_password: str,
    new_password: str,
    keep_this_session: bool,
    now: datetime,
    uow: RegistryUnitOfWork,
    request_id: str | None = None,
) -> int:
    """Replaces the password when the current one is right; the user's other sessions end
    (this one too unless kept). Returns how many sessions ended."""
    with uow:
        user = uow.users.get(user_id, for_update=True)
        if user is None:
            raise Unauthenticated("invalid_token")
        if not verify_account_password(user.password_hash, current_password):
            uow.audit.record(
                events.PASSWORD_CHANGED,
                tenant_id=tenant_id,
                actor_user_id=user_id,
                actor_role=role.value,
                request_id=request_id,
                outcome=events.FAILURE,
                metadata={"reason": "bad_password"},
            )
            uow.commit()
            raise Forbidden("invalid_password", "the current password is wrong")
        validate_password(new_password, email=user.email)
        uow.users.set_password_hash(user_id, hash_password(new_password))
        keep = session_id if keep_this_session else None
        ended = uow.refresh_tokens.revoke_others(user_id, None, keep, now)
        uow.one_time_tokens.expire_outstanding(OneTimeTokenKind.PASSWORD_RESET, at=now, user_id=user_id)
        uow.audit.record(
            events.PASSWORD_CHANGED,
            tenant_id=tenant_id,
            actor_user_id=user_id,
            actor_role=role.value,
            target_type="user",
            target_id=str(user_id),
            request_id=request_id,
            metadata={"count": ended, "reason": "kept_this_session" if keep else "ended_all_sessions"},
        )
        uow.commit()
    return ended


def _record_everywhere(
    uow: RegistryUnitOfWork, user_id: uuid.UUID, event: str, request_id: str | None, metadata: dict
) -> None:
    """One row per workspace of the user, so each workspace's trail shows it (none: one global row)."""
    tenant_ids = [m.tenant_id for m in uow.memberships.for_user(user_id)] or [None]
    for tenant_id in tenant_ids:
        uow.audit.record(
            event,
            tenant_id=tenant_id,
            actor_user_id=user_id,
            target_type="user",
            target_id=str(user_id),
            request_id=request_id,
            metadata=metadata,
        )
