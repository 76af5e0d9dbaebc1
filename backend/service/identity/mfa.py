"""A TOTP second factor: enrolment confirmed with a code, single-use recovery codes, the
second login step, disabling with password + code, and the operator's reset for a locked-out
owner.

The secret is sealed by a SecretBox (key from the settings) before it is stored; recovery
codes are 80-bit random values stored as SHA-256 digests (their entropy, with the second
step's rate limit, makes a slow hash unnecessary). The login's first step answers an
MfaChallenge (a single-use, 5-minute token) instead of tokens when the user has a factor.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from backend.core.passwords import verify_account_password
from backend.domain import audit as events
from backend.domain.errors import Conflict, Forbidden, NotFound, Unauthenticated
from backend.domain.identity import MfaFactor, OneTimeTokenKind, Role, TokenPair
from backend.service.identity.common import token_digest
from backend.service.identity.sessions import log_in
from backend.service.ports import AccessTokenIssuer, RegistryUnitOfWork, SecretBox, Totp

RECOVERY_CODES = 10


@dataclass(frozen=True)
class Enrolment:
    secret: str  # base32, for typing into an app
    otpauth_uri: str  # for a QR code


def recovery_code() -> str:
    """16 base32 characters (80 bits) shown as xxxx-xxxx-xxxx-xxxx."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _recovery_digest(code: str) -> bytes:
    return token_digest(code.strip().lower().replace("-", "").replace(" ", ""))


def start_enrolment(
    *, user_id: uuid.UUID, issuer: str, uow: RegistryUnitOfWork, box: SecretBox, totp: Totp
) -> Enrolment:
    """A new pending secret (replacing a pending one); 409 `mfa_already_enabled` when on."""
    with uow:
        user = uow.users.get(user_id, for_update=True)
        if user is None:
            raise Unauthenticated("invalid_token")
        factor = uow.mfa.get(user_id)
        if factor is not None and factor.enabled_at is not None:
            raise Conflict("mfa_already_enabled")
        secret = totp.new_secret()
        uow.mfa.start(user_id, box.seal(secret.encode()))
        uow.commit()
    return Enrolment(secret, totp.provisioning_uri(secret, account=user.email, issuer=issuer))


def confirm_enrolment(
    *,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    role: Role,
    code: str,
    now: datetime,
    uow: RegistryUnitOfWork,
    box: SecretBox,
    totp: Totp,
    request_id: str | None = None,
) -> list[str]:
    """Turns the pending factor on with a code from the app; returns the recovery codes (shown
    once, stored as digests)."""
    with uow:
        factor = uow.mfa.get(user_id, for_update=True)
        if factor is None:
            raise Conflict("mfa_not_enrolling", "start the enrolment first")
        if factor.enabled_at is not None:
            raise Conflict("mfa_already_enabled")
        step = totp.matching_step(box.open(factor.secret_sealed).decode(), code, now=now, after_step=None)
        if step is None:
            _failed(uow, user_id, tenant_id, role, "confirm", request_id)
            raise Forbidden("invalid_mfa_code")
        uow.mfa.enable(user_id, now, step)
        codes = [recovery_code() for _ in range(RECOVERY_CODES)]
        uow.mfa.replace_recovery_codes(user_id, [_recovery_digest(c) for c in codes])
        uow.audit.record(
            events.MFA_ENABLED,
            tenant_id=tenant_id,
            actor_user_id=user_id,
            actor_role=role.value,
            target_type="user",
            target_id=str(user_id),
            request_id=request_id,
        )
        uow.commit()
    return codes


def complete_login(
    *,
    challenge: str,
    code: str,
    now: datetime,
    refresh_ttl_s: int,
    uow: RegistryUnitOfWork,
    tokens: AccessTokenIssuer,
    box: SecretBox,
    totp: Totp,
    request_id: str | None = None,
    user_agent: str | None = None,
) -> TokenPair:
    """Spends the challenge with a TOTP code or a recovery code for the token pair. A wrong
    code leaves the challenge usable until it expires (the rate limit bounds the tries)."""
    with uow:
        record = uow.one_time_tokens.lock_by_hash(OneTimeTokenKind.MFA_CHALLENGE, token_digest(challenge))
        if record is None or record.used_at is not None or record.user_id is None or record.tenant_id is None:
            raise Unauthenticated("invalid_token")
        if record.expires_at <= now:
            raise Unauthenticated("token_expired")
        factor = uow.mfa.get(record.user_id, for_update=True)
        membership = uow.memberships.get(record.user_id, record.tenant_id)
        if factor is None or factor.enabled_at is None or membership is None:
            raise Unauthenticated("invalid_token")  # reset or membership gone meanwhile
        method = _spend_code(uow, factor, code, now, box, totp)
        if method is None:
            _failed(uow, record.user_id, record.tenant_id, membership.role, "login", request_id)
            raise Unauthenticated("invalid_mfa_code")
        uow.one_time_tokens.mark_used(record.id, now)
        pair = log_in(
            uow=uow,
            tokens=tokens,
            membership=membership,
            now=now,
            refresh_ttl_s=refresh_ttl_s,
            user_agent=user_agent,
            request_id=request_id,
            reason=f"mfa_{method}",
        )
        uow.commit()
    return pair


def _spend_code(
    uow: RegistryUnitOfWork, factor: MfaFactor, code: str, now: datetime, box: SecretBox, totp: Totp
) -> str | None:
    """'totp' or 'recovery_code' when the code is good (and now spent), None otherwise."""
    secret = box.open(factor.secret_sealed).decode()
    step = totp.matching_step(secret, code, now=now, after_step=factor.last_step)
    if step is not None:
        uow.mfa.accept_step(factor.user_id, step)
        return "totp"
    if uow.mfa.spend_recovery_code(factor.user_id, _recovery_digest(code or ""), now):
        uow.audit.record(
            events.MFA_RECOVERY_CODE_USED,
            actor_user_id=factor.user_id,
            target_type="user",
            target_id=str(factor.user_id),
            metadata={"count": uow.mfa.recovery_codes_left(factor.user_id)},
        )
        return "recovery_code"
    return None


def disable(
    *,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    role: Role,
    password: str,
    code: str,
    now: datetime,
    uow: RegistryUnitOfWork,
    box: SecretBox,
    totp: Totp,
    request_id: str | None = None,
) -> None:
    """Turns the factor off: the password and a current code (or a recovery code) are both needed."""
    with uow:
        user = uow.users.get(user_id, for_update=True)
        factor = uow.mfa.get(user_id, for_update=True)
        if user is None:
            raise Unauthenticated("invalid_token")
        if not verify_account_password(user.password_hash, password):
            _failed(uow, user_id, tenant_id, role, "disable_password", request_id)
            raise Forbidden("invalid_password", "the password is wrong")
        if factor is None or factor.enabled_at is None:
            raise Conflict("mfa_not_enabled")
        if _spend_code(uow, factor, code, now, box, totp) is None:
            _failed(uow, user_id, tenant_id, role, "disable", request_id)
            raise Forbidden("invalid_mfa_code")
        uow.mfa.remove(user_id)
        uow.audit.record(
            events.MFA_DISABLED,
            tenant_id=tenant_id,
            actor_user_id=user_id,
            actor_role=role.value,
            target_type="user",
            target_id=str(user_id),
            request_id=request_id,
            metadata={"reason": "user"},
        )
        uow.commit()


def status(*, user_id: uuid.UUID, uow: RegistryUnitOfWork) -> dict:
    with uow:
        factor = uow.mfa.get(user_id)
        enabled = factor is not None and factor.enabled_at is not None
        left = uow.mfa.recovery_codes_left(user_id) if enabled else 0
    return {
        "enabled": enabled,
        "enabled_at": factor.enabled_at if enabled else None,
        "recovery_codes_left": left,
    }


def reset_by_operator(*, email: str, now: datetime, uow: RegistryUnitOfWork) -> uuid.UUID:
    """Removes a locked-out user's factor (and recovery codes) on an operator's word, ends
    their sessions, and records it in each of their workspaces' trails."""
    with uow:
        user = uow.users.by_email(email.strip(), for_update=True)
        if user is None:
            raise NotFound("not_found", "no user with that email")
        if not uow.mfa.remove(user.id):
            raise Conflict("mfa_not_enabled")
        uow.refresh_tokens.revoke_all_for_user(user.id, now)
        for membership in uow.memberships.for_user(user.id) or [None]:
            uow.audit.record(
                events.MFA_DISABLED,
                tenant_id=membership.tenant_id if membership else None,
                target_type="user",
                target_id=str(user.id),
                metadata={"reason": "operator"},
            )
        uow.commit()
    return user.id


def _failed(
    uow: RegistryUnitOfWork, user_id: uuid.UUID, tenant_id: uuid.UUID, role: Role, reason: str, request_id
) -> None:
    """Record a wrong code or password (committed), before the caller refuses."""
    uow.audit.record(
        events.MFA_FAILED,
        tenant_id=tenant_id,
        actor_user_id=user_id,
        actor_role=role.value,
        request_id=request_id,
        outcome=events.FAILURE,
        metadata={"reason": reason},
    )
    uow.commit()
