"""Client invitations: a worker invites a client record; the person accepts with a password."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from backend.core.passwords import hash_password, verify_password
from backend.domain import audit as events
from backend.domain.errors import Conflict, Invalid, NotFound, Unauthenticated
from backend.domain.identity import OneTimeTokenKind, Role, User, validate_password, validate_person_name
from backend.domain.tenants import Tenant, TenantStatus
from backend.service.identity.common import MAIL_QUEUE, new_secret, public, send, token_digest
from backend.service.ports import JobQueue, Mailer, RegistryUnitOfWork

INVITATION_PATH = "/accept-invitation"
INVITATION_TASK = "mail_invitation"


@dataclass(frozen=True)
class Invitation:
    client_id: uuid.UUID
    email: str
    expires_at: datetime


def invite_client(
    *,
    tenant_id: uuid.UUID,
    schema_name: str,
    client_id: uuid.UUID,
    inviter_id: uuid.UUID,
    now: datetime,
    invitation_ttl_s: int,
    uow: RegistryUnitOfWork,
    jobs: JobQueue,
    request_id: str | None = None,
) -> Invitation:
    """Asks the worker to mail one of the workspace's clients a single-use link to create their
    login (`mail_invitation` runs there); a new invitation supersedes the client's earlier ones.
    Nothing here depends on whether the invited address already has an account elsewhere."""
    with uow:
        contact = uow.client_directory.contact(schema_name, client_id)
        if contact is None:
            raise NotFound()
        if not contact.email:
            raise Invalid({"email": ["the client has no email address"]})
        if uow.memberships.client_is_linked(tenant_id, client_id):
            raise Conflict("already_member", "this client already has a login")
        expires_at = now + timedelta(seconds=invitation_ttl_s)
        uow.audit.record(
            events.INVITATION_SENT,
            tenant_id=tenant_id,
            actor_user_id=inviter_id,
            actor_role=Role.WORKER.value,
            target_type="client",
            target_id=str(client_id),
            request_id=request_id,
        )
        uow.commit()
    jobs.enqueue(
        INVITATION_TASK,
        queue=MAIL_QUEUE,
        tenant_id=str(tenant_id),
        client_id=str(client_id),
        expires_at=expires_at.isoformat(),
        request_id=request_id,
    )
    return Invitation(client_id=client_id, email=contact.email, expires_at=expires_at)


def mail_invitation(
    *,
    tenant_id: uuid.UUID,
    client_id: uuid.UUID,
    expires_at: datetime,
    now: datetime,
    app_url: str,
    uow: RegistryUnitOfWork,
    mailer: Mailer,
) -> bool:
    """Draws the invitation's token and mails the link (in the worker). The client's record is
    read again: an invitation whose client went, lost its email, got a login meanwhile, or
    whose workspace is being deleted, is dropped (False). A retried attempt draws a new link."""
    with uow:
        tenant = uow.tenants.get(tenant_id)
        if tenant is None or tenant.status in (TenantStatus.DELETED, TenantStatus.DELETION_SCHEDULED):
            return False
        contact = uow.client_directory.contact(tenant.schema_name, client_id)
        if contact is None or not contact.email or uow.memberships.client_is_linked(tenant_id, client_id):
            return False
        if expires_at <= now:
            return False
        uow.one_time_tokens.expire_outstanding(
            OneTimeTokenKind.INVITATION, at=now, tenant_id=tenant_id, client_id=client_id
        )
        value, digest = new_secret()
        uow.one_time_tokens.add(
            kind=OneTimeTokenKind.INVITATION,
            token_hash=digest,
            expires_at=expires_at,
            tenant_id=tenant_id,
            client_id=client_id,
            email=contact.email,
        )
        uow.commit()
    link = f"{app_url}{INVITATION_PATH}?token={value}"
    body = f"{tenant.name} invites you to see your appointments and files:\n\n{link}\n"
    send(mailer, to=contact.email, subject=f"Invitation from {tenant.name}", body=body)
    return True


@dataclass(frozen=True)
class AcceptedInvitation:
    user: User
    tenant: Tenant
    client_id: uuid.UUID


def accept_invitation(
    *,
    token: str,
    password: str,
    name: str | None,
    now: datetime,
    uow: RegistryUnitOfWork,
    request_id: str | None = None,
) -> AcceptedInvitation:
    """Turns an invitation into a client membership: creates the person's login (the token
    proves the email) or, for someone who already has one, checks their password."""
    with uow:
        record = uow.one_time_tokens.lock_by_hash(OneTimeTokenKind.INVITATION, token_digest(token))
        if record is None or record.tenant_id is None or record.client_id is None:
            raise Unauthenticated("invalid_token")
        if record.used_at is not None:
            raise Conflict("invitation_used")
        if record.expires_at <= now:
            raise Unauthenticated("token_expired")
        tenant = uow.tenants.get(record.tenant_id)
        if tenant is None or tenant.status in (TenantStatus.DELETED, TenantStatus.DELETION_SCHEDULED):
            raise Unauthenticated("invalid_token")
        contact = uow.client_directory.contact(tenant.schema_name, record.client_id)
        if contact is None:
            raise NotFound("not_found", "the client record no longer exists")
        if (record.email or "").casefold() != (contact.email or "").casefold():
            # The record's email changed since the link was mailed: it proves nothing now.
            raise Unauthenticated("invalid_token")
        if uow.memberships.client_is_linked(tenant.id, record.client_id):
            raise Conflict("invitation_used")
        user = _invited_user(uow, record.email or "", password, name or contact.name, now)
        if uow.memberships.get(user.id, tenant.id) is not None:
            raise Conflict("already_member", "you already belong to this workspace")
        uow.memberships.add(
            user_id=user.id, tenant_id=tenant.id, role=Role.CLIENT, client_id=record.client_id
        )
        uow.one_time_tokens.mark_used(record.id, now)
        uow.audit.record(
            events.INVITATION_ACCEPTED,
            tenant_id=tenant.id,
            actor_user_id=user.id,
            actor_role=Role.CLIENT.value,
            target_type="client",
            target_id=str(record.client_id),
            request_id=request_id,
        )
        uow.commit()
    return AcceptedInvitation(user=public(user), tenant=tenant, client_id=record.client_id)


def _invited_user(uow: RegistryUnitOfWork, email: str, password: str, name: str, now: datetime) -> User:
    user = uow.users.by_email(email, for_update=True)
    if user is None:
        validate_password(password, email=email)
        user_id = uuid.uuid4()
        uow.users.add(user_id, email, validate_person_name(name), hash_password(password), now)
        return User(user_id, email, name, now, now)
    if user.password_hash is None:
        validate_password(password, email=email)
        uow.users.set_password_hash(user.id, hash_password(password))
    elif not verify_password(user.password_hash, password):
        # Someone who already has a login joins with it, never by replacing its password.
        raise Unauthenticated("invalid_credentials")
    uow.users.mark_verified(user.id, now)
    return User(user.id, user.email, user.name, user.verified_at or now, user.created_at)
