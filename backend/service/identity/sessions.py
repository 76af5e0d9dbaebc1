"""Sessions: login, refresh-token rotation with reuse detection, logout."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from backend.core.passwords import hash_password, needs_rehash, verify_dummy, verify_password
from backend.domain import audit as events
from backend.domain.errors import Forbidden, Invalid, Unauthenticated
from backend.domain.identity import Membership, MfaChallenge, OneTimeTokenKind, Role, TokenPair, User
from backend.domain.tenants import TenantStatus
from backend.service.identity.common import new_secret, token_digest
from backend.service.ports import AccessTokenIssuer, RegistryUnitOfWork


def login(
    *,
    email: str,
    password: str,
    tenant_slug: str | None,
    now: datetime,
    refresh_ttl_s: int,
    uow: RegistryUnitOfWork,
    tokens: AccessTokenIssuer,
    request_id: str | None = None,
    user_agent: str | None = None,
    mfa_challenge_ttl_s: int = 300,
) -> TokenPair | MfaChallenge:
    """Exchanges email + password for an access token and a new refresh-token family, or,
    when the user has a second factor, for an MFA challenge to spend with a code
    (service/identity/mfa.py).

    An unknown email, a user without a password and a wrong password get the same answer
    after the same work (a dummy hash is verified): no account enumeration."""
    with uow:
        user = uow.users.by_email(email.strip())
        if user is None or user.password_hash is None:
            verify_dummy(password)
            reason = "unknown_user" if user is None else "no_password"
            _login_failed(uow, user, None, reason, request_id)
        if not verify_password(user.password_hash, password):
            _login_failed(uow, user, _attempted_tenant(uow, user, tenant_slug), "bad_password", request_id)
        if needs_rehash(user.password_hash):
            uow.users.set_password_hash(user.id, hash_password(password))
        membership = _choose_membership(uow, user, tenant_slug, request_id)
        factor = uow.mfa.get(user.id)
        if factor is not None and factor.enabled_at is not None:
            challenge = _challenge(uow, user.id, membership.tenant_id, now, mfa_challenge_ttl_s)
            uow.audit.record(
                events.MFA_CHALLENGED,
                tenant_id=membership.tenant_id,
                actor_user_id=user.id,
                actor_role=membership.role.value,
                request_id=request_id,
            )
            uow.commit()
            return challenge
        pair = log_in(
            uow=uow,
            tokens=tokens,
            membership=membership,
            now=now,
            refresh_ttl_s=refresh_ttl_s,
            user_agent=user_agent,
            request_id=request_id,
        )
        uow.commit()
    return pair


def log_in(
    *,
    uow: RegistryUnitOfWork,
    tokens: AccessTokenIssuer,
    membership: Membership,
    now: datetime,
    refresh_ttl_s: int,
    user_agent: str | None,
    request_id: str | None,
    reason: str | None = None,
) -> TokenPair:
    """The end of every successful login (password, or password then second factor): a new
    session for the membership and its audit event, in the caller's unit of work."""
    pair = start_session(
        uow=uow,
        tokens=tokens,
        membership=membership,
        now=now,
        refresh_ttl_s=refresh_ttl_s,
        user_agent=user_agent,
    )
    uow.audit.record(
        events.LOGIN,
        tenant_id=membership.tenant_id,
        actor_user_id=membership.user_id,
        actor_role=membership.role.value,
        request_id=request_id,
        metadata={"reason": reason} if reason else None,
    )
    return pair


def _challenge(
    uow: RegistryUnitOfWork, user_id: uuid.UUID, tenant_id: uuid.UUID, now: datetime, ttl_s: int
) -> MfaChallenge:
    value, digest = new_secret()
    uow.one_time_tokens.add(
        kind=OneTimeTokenKind.MFA_CHALLENGE,
        token_hash=digest,
        expires_at=now + timedelta(seconds=ttl_s),
        user_id=user_id,
        tenant_id=tenant_id,
    )
    return MfaChallenge(challenge=value, expires_in=ttl_s)


def _login_failed(
    uow: RegistryUnitOfWork,
    user: User | None,
    tenant_id: uuid.UUID | None,
    reason: str,
    request_id: str | None,
    error: Exception | None = None,
) -> None:
    """Record the failure (committed, the caller's work included), then refuse."""
    uow.audit.record(
        events.LOGIN,
        tenant_id=tenant_id,
        actor_user_id=user.id if user else None,
        request_id=request_id,
        outcome=events.FAILURE,
        metadata={"reason": reason},
    )
    uow.commit()
    raise error or Unauthenticated("invalid_credentials")


def _attempted_tenant(uow: RegistryUnitOfWork, user: User, tenant_slug: str | None) -> uuid.UUID | None:
    """The workspace a failed login was aimed at, when it is clear: its trail shows the attempt."""
    workspaces = uow.memberships.for_user(user.id)
    if tenant_slug:
        workspaces = [m for m in workspaces if m.tenant_slug == tenant_slug]
    return workspaces[0].tenant_id if len(workspaces) == 1 else None


def _choose_membership(
    uow: RegistryUnitOfWork, user: User, tenant_slug: str | None, request_id: str | None
) -> Membership:
    workspaces = uow.memberships.for_user(user.id)
    if tenant_slug:
        chosen = [m for m in workspaces if m.tenant_slug == tenant_slug]
        if not chosen:
            # Same answer whether the slug exists or not.
            refusal = Forbidden("forbidden", "not a member of this workspace")
            _login_failed(uow, user, None, "not_member", request_id, refusal)
        return chosen[0]
    if not workspaces:
        refusal = Forbidden("forbidden", "no workspace")
        _login_failed(uow, user, None, "no_membership", request_id, refusal)
    if len(workspaces) > 1:
        slugs = ", ".join(m.tenant_slug for m in workspaces)
        refusal = Invalid({"tenant": [f"required: you belong to several workspaces ({slugs})"]})
        _login_failed(uow, user, None, "tenant_required", request_id, refusal)
    return workspaces[0]


def start_session(
    *,
    uow: RegistryUnitOfWork,
    tokens: AccessTokenIssuer,
    membership: Membership,
    now: datetime,
    refresh_ttl_s: int,
    family_id: uuid.UUID | None = None,
    user_agent: str | None = None,
) -> TokenPair:
    """Issues a token pair for the membership inside the caller's open unit of work: a new
    refresh family (the session every access token names in `sid`), or the next token of
    `family_id` when rotating."""
    family_id = family_id or uuid.uuid4()
    value, digest = new_secret()
    uow.refresh_tokens.add(
        family_id=family_id,
        user_id=membership.user_id,
        tenant_id=membership.tenant_id,
        token_hash=digest,
        issued_at=now,
        expires_at=now + timedelta(seconds=refresh_ttl_s),
        user_agent=user_agent,
    )
    access = tokens.issue(
        user_id=membership.user_id,
        tenant_id=membership.tenant_id,
        role=membership.role.value,
        client_id=membership.client_id,
        session_id=family_id,
    )
    return TokenPair(access_token=access, expires_in=tokens.ttl_s, refresh_token=value)


def refresh(
    *,
    refresh_token: str,
    now: datetime,
    refresh_ttl_s: int,
    uow: RegistryUnitOfWork,
    tokens: AccessTokenIssuer,
    request_id: str | None = None,
    user_agent: str | None = None,
) -> TokenPair:
    """Spends a refresh token for a new pair in the same family; a token presented a second
    time revokes the whole family (it was stolen, or the client is broken)."""
    with uow:
        record = uow.refresh_tokens.lock_by_hash(token_digest(refresh_token))
        if record is None:
            raise Unauthenticated("invalid_token")
        if record.used_at is not None:
            uow.refresh_tokens.revoke_family(record.family_id, now)
            uow.audit.record(
                events.REFRESH_REUSED,
                tenant_id=record.tenant_id,
                actor_user_id=record.user_id,
                request_id=request_id,
                outcome=events.FAILURE,
            )
            uow.commit()
            raise Unauthenticated("refresh_token_reused")
        if record.revoked_at is not None:
            raise Unauthenticated("invalid_token")
        if record.expires_at <= now:
            raise Unauthenticated("token_expired")
        membership = uow.memberships.get(record.user_id, record.tenant_id)
        if membership is None or membership.tenant_status is TenantStatus.DELETED:
            uow.refresh_tokens.revoke_family(record.family_id, now)
            uow.commit()
            raise Unauthenticated("invalid_token")
        uow.refresh_tokens.mark_used(record.id, now)
        pair = start_session(
            uow=uow,
            tokens=tokens,
            membership=membership,
            now=now,
            refresh_ttl_s=refresh_ttl_s,
            family_id=record.family_id,
            user_agent=user_agent,
        )
        uow.audit.record(
            events.REFRESH,
            tenant_id=record.tenant_id,
            actor_user_id=record.user_id,
            actor_role=membership.role.value,
            request_id=request_id,
        )
        uow.commit()
    return pair


def logout(
    *,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    role: Role,
    session_id: uuid.UUID | None,
    now: datetime,
    uow: RegistryUnitOfWork,
    request_id: str | None = None,
) -> None:
    """Revokes the caller's refresh-token family (every session in this workspace when the
    access token carries none)."""
    with uow:
        if session_id is not None:
            uow.refresh_tokens.revoke_family(session_id, now)
        else:
            uow.refresh_tokens.revoke_for(user_id, tenant_id, now)
        uow.audit.record(
            events.LOGOUT,
            tenant_id=tenant_id,
            actor_user_id=user_id,
            actor_role=role.value,
            request_id=request_id,
        )
        uow.commit()
