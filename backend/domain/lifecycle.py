"""Pure rules of the data lifecycle: scheduling and cancelling a deletion, the purge steps,
the tombstone a purged tenant leaves, and the retention cut-offs (docs/data-lifecycle.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from backend.domain.errors import Conflict, Invalid, NotFound
from backend.domain.identity import Role
from backend.domain.tenants import Tenant, TenantStatus

# The order matters: tokens go first (nobody gets a new session while the rest runs), the
# registry row flips to `deleted` last (until then a re-run finds the tenant still due).
PURGE_STEPS = ("revoke_tokens", "drop_schema", "delete_media", "remove_members", "tombstone")

# What a deletion can be scheduled from; cancelling returns the tenant to that state, so a
# tenant an operator disabled stays disabled.
SCHEDULABLE = frozenset({TenantStatus.PROVISIONING, TenantStatus.ACTIVE, TenantStatus.DISABLED})


def deletion_due_at(now: datetime, grace_days: int) -> datetime:
    """When the purge may remove a tenant whose deletion is scheduled now (0 days: at once)."""
    if grace_days < 0:
        raise ValueError("grace_days must be 0 or more")
    return now + timedelta(days=grace_days)


def check_confirm_slug(confirm_slug: str, slug: str) -> None:
    """The owner confirms by typing the workspace slug; anything else is a 422."""
    if confirm_slug != slug:
        raise Invalid({"confirm_slug": ["does not match the workspace slug"]})


def check_schedulable(status: TenantStatus) -> None:
    """Every state but `deleted` can be scheduled (a scheduled one keeps its due date)."""
    if status is TenantStatus.DELETED:
        raise NotFound("not_found", "the tenant is already deleted")


def check_cancellable(status: TenantStatus, due_at: datetime | None, now: datetime) -> None:
    """A deletion can be cancelled only during its grace period: once due, the purge may
    already be removing data and a cancel would race it."""
    if status is not TenantStatus.DELETION_SCHEDULED:
        raise NotFound("not_found", "no deletion is scheduled")
    if due_at is not None and due_at <= now:
        raise Conflict("deletion_in_progress", "the grace period is over")


def is_due(status: TenantStatus, due_at: datetime | None, now: datetime) -> bool:
    return status is TenantStatus.DELETION_SCHEDULED and due_at is not None and due_at <= now


def tombstone_slug(tenant_id: uuid.UUID) -> str:
    """The slug a purged tenant keeps: derived from its opaque id, so it names nobody and
    cannot collide with a live slug (the registry's unique constraint stays as it is)."""
    return f"deleted-{tenant_id.hex}"


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of data outlives its deletion (days; 0 means at the next purge)."""

    media_days: int
    export_days: int
    audit_days: int

    def media_cutoff(self, now: datetime) -> datetime:
        return now - timedelta(days=self.media_days)

    def export_cutoff(self, now: datetime) -> datetime:
        return now - timedelta(days=self.export_days)

    def audit_cutoff(self, now: datetime) -> datetime:
        return now - timedelta(days=self.audit_days)


@dataclass(frozen=True)
class SourceColumn:
    """A column of a tenant table as the export's snapshot reads it from the catalog."""

    name: str
    db_type: str  # PostgreSQL's name for the type (format_type)
    not_null: bool


@dataclass(frozen=True)
class ArchiveMember:
    """One file of an export zip: its path in the zip, its bytes as they come, and whether
    to deflate them (already compressed media are stored as they are)."""

    name: str
    chunks: Iterable[bytes]
    compress: bool = True


@dataclass(frozen=True)
class Actor:
    """Who acts, for the audit trail: a user through the API, or an operator's command."""

    user_id: uuid.UUID | None = None
    role: str = "operator"
    request_id: str | None = None


OPERATOR = Actor()
# The worker's periodic tasks (retention, due purges, unverified signups): nobody asked.
SCHEDULER = Actor(role="system")


@dataclass(frozen=True)
class UnverifiedSignup:
    """A signup whose email was never verified in time: the user and the workspaces they own.
    `shared` is True when anyone else belongs to one of them, or the user belongs to a
    workspace as anything but its owner: then nothing is removed (it is not a bare signup)."""

    user_id: uuid.UUID
    owned: tuple[uuid.UUID, ...]
    shared: bool


def unverified_cutoff(now: datetime, retention_days: int) -> datetime:
    """Signups created before this and still unverified are removed."""
    return now - timedelta(days=retention_days)


def restored_status(status: TenantStatus, previous: TenantStatus | None) -> TenantStatus:
    """The state a restored tenant comes back in: as it was, or as it was before its
    deletion was scheduled (a restore is an explicit decision to keep it)."""
    if status in (TenantStatus.DELETION_SCHEDULED, TenantStatus.DELETED):
        status = previous or TenantStatus.ACTIVE
    if status is TenantStatus.PROVISIONING:
        return TenantStatus.ACTIVE
    return status


@dataclass(frozen=True)
class ArchivedUser:
    id: uuid.UUID
    email: str
    name: str
    password_hash: str | None
    verified_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class ArchivedMembership:
    user_id: uuid.UUID
    role: Role
    client_id: uuid.UUID | None


@dataclass(frozen=True)
class ArchiveContents:
    """What an operator archive says about its tenant (the schema travels as a dump)."""

    tenant: Tenant
    previous_status: TenantStatus | None
    schema_version: str | None
    users: tuple[ArchivedUser, ...]
    memberships: tuple[ArchivedMembership, ...]
    # The workspace's own setting (shared.tenants); archives written before it existed: off.
    mfa_required_for_workers: bool = False


@dataclass(frozen=True)
class ArchiveSummary:
    path: str
    bytes: int
    schema_version: str | None
    media_files: int
    members: int
