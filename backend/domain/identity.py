"""Who is calling, and the identity records: users, memberships, one-time and refresh
tokens, with the rules for passwords, emails and workspace slugs."""

from __future__ import annotations

import enum
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime

from backend.domain.errors import Invalid
from backend.domain.tenants import Plan, TenantStatus

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 256
EMAIL_MAX_LENGTH = 254
NAME_MAX_LENGTH = 120


class Role(enum.StrEnum):
    WORKER = "worker"
    CLIENT = "client"


class OneTimeTokenKind(enum.StrEnum):
    EMAIL_VERIFICATION = "email_verification"
    INVITATION = "invitation"
    PASSWORD_RESET = "password_reset"
    MFA_CHALLENGE = "mfa_challenge"
    EMAIL_CHANGE = "email_change"


@dataclass(frozen=True)
class Principal:
    """The caller of a tenant-scoped request, as established from a verified token and
    checked against the registry (membership still present, tenant still reachable)."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: Role
    client_id: uuid.UUID | None = None  # set for clients: the client record they are
    session_id: uuid.UUID | None = None  # the refresh-token family the access token came from


@dataclass(frozen=True)
class AccessRecord:
    """What the registry says about a (user, tenant) pair, read on every request: enough for
    the access policy (backend/domain/access.py) and for `GET /me`."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_schema: str
    tenant_slug: str
    tenant_status: TenantStatus
    role: Role
    client_id: uuid.UUID | None
    tenant_name: str = ""
    plan: Plan = Plan.TRIAL
    trial_ends_at: datetime | None = None
    deletion_due_at: datetime | None = None
    user_verified: bool = False
    # The token's session (refresh family) exists for this user and tenant and was never
    # revoked (logout, reuse, client deletion): anything else is refused, fail closed.
    session_active: bool = False
    migration_failed: bool = False  # the registry records a failed migration of the tenant
    # The workspace requires a second factor of its workers, and whether this user has one
    # turned on (a confirmed TOTP factor): see `mfa_enrolment_due` in domain/access.py.
    mfa_required: bool = False
    mfa_enabled: bool = False


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    name: str
    verified_at: datetime | None
    created_at: datetime
    password_hash: str | None = None  # never leaves the service layer


@dataclass(frozen=True)
class Membership:
    """A user's place in one workspace, with the workspace's slug and state."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_slug: str
    tenant_status: TenantStatus
    role: Role
    client_id: uuid.UUID | None


@dataclass(frozen=True)
class RefreshToken:
    id: uuid.UUID
    family_id: uuid.UUID
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class MfaFactor:
    """A user's TOTP factor: the sealed secret, enabled once confirmed with a code."""

    user_id: uuid.UUID
    secret_sealed: bytes
    enabled_at: datetime | None
    last_step: int | None


@dataclass(frozen=True)
class MfaChallenge:
    """The answer to a right password when a second factor is on: spend `challenge` with a code."""

    challenge: str
    expires_in: int


@dataclass(frozen=True)
class SessionInfo:
    """One login (a refresh-token family) as its owner sees it: no token, no IP address."""

    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    current: bool = False


@dataclass(frozen=True)
class OneTimeToken:
    id: uuid.UUID
    kind: OneTimeTokenKind
    user_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    client_id: uuid.UUID | None
    email: str | None
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str


def normalize_email(email: str) -> str:
    """Trimmed; compared case-insensitively everywhere (unique index on lower(email))."""
    cleaned = (email or "").strip()
    if not 3 <= len(cleaned) <= EMAIL_MAX_LENGTH or "@" not in cleaned:
        raise Invalid({"email": ["a valid email address"]})
    return cleaned


def validate_person_name(name: str | None) -> str:
    cleaned = (name or "").strip()
    if len(cleaned) > NAME_MAX_LENGTH:
        raise Invalid({"name": [f"at most {NAME_MAX_LENGTH} characters"]})
    return cleaned


def validate_password(password: str, *, email: str) -> str:
    """10 to 256 characters (after Unicode normalisation), and not the email address."""
    normalised = unicodedata.normalize("NFKC", password or "")
    problems = []
    if not PASSWORD_MIN_LENGTH <= len(normalised) <= PASSWORD_MAX_LENGTH:
        problems.append(f"{PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters")
    if normalised.strip().casefold() == (email or "").strip().casefold():
        problems.append("must not be your email address")
    if problems:
        raise Invalid({"password": problems})
    return password


def workspace_slug_from_name(name: str, suffix: str = "") -> str:
    """A slug proposal for a workspace created without one: ascii, lowercase, hyphenated,
    at most 40 characters with the suffix (the caller validates and retries on conflict)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "workspace"
    if suffix:
        base = base[: 39 - len(suffix)].rstrip("-")
        return f"{base}-{suffix}"
    return base[:40].rstrip("-")


@dataclass(frozen=True)
class ClientContact:
    """What an invitation needs from the tenant's client record."""

    id: uuid.UUID
    name: str
    email: str | None
