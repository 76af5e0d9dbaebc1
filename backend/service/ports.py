"""What the services need from the outside world, as Protocols.

The SQL versions live in backend/infrastructure; the entry points (api, cli) wire them in,
and unit tests pass small fakes.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, Self

from backend.domain.appointments import Appointment, AppointmentFilter
from backend.domain.audit import AuditEvent
from backend.domain.clients import Client
from backend.domain.identity import (
    ClientContact,
    Membership,
    OneTimeToken,
    OneTimeTokenKind,
    RefreshToken,
    Role,
    User,
)
from backend.domain.lifecycle import ArchiveContents, ArchivedUser, ArchiveMember, ArchiveSummary
from backend.domain.media import Media, MediaFilter
from backend.domain.tenants import SchemaDowngrade, SchemaUpgrade, SpareSchema, Tenant, TenantStatus


class TenantRepository(Protocol):
    def add(self, tenant: Tenant) -> None: ...
    def get(self, tenant_id: uuid.UUID) -> Tenant | None: ...
    def get_by_slug(self, slug: str) -> Tenant | None: ...
    def list(self, status: TenantStatus | None = None) -> list[Tenant]: ...
    def record_migration(self, tenant_id: uuid.UUID, version: str | None, error: str | None) -> None: ...
    def lock_by_slug(self, slug: str) -> Tenant | None: ...
    def set_status(
        self, tenant_id: uuid.UUID, status: TenantStatus, *, disabled_at: datetime | None
    ) -> None: ...
    def set_trial_end(self, tenant_id: uuid.UUID, trial_ends_at: datetime) -> None: ...
    def try_lock(self, tenant_id: uuid.UUID) -> bool: ...
    def count_migratable(self) -> int: ...
    def list_behind(self, head: str) -> list[Tenant]: ...


class UserRepository(Protocol):
    def id_by_email(self, email: str) -> uuid.UUID | None: ...
    def add(
        self,
        user_id: uuid.UUID,
        email: str,
        name: str,
        password_hash: str | None,
        verified_at: datetime | None = None,
    ) -> None: ...
    def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None: ...
    def by_email(self, email: str, *, for_update: bool = False) -> User | None: ...
    def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None: ...
    def set_name(self, user_id: uuid.UUID, name: str) -> None: ...
    def mark_verified(self, user_id: uuid.UUID, at: datetime) -> bool: ...


class MembershipRepository(Protocol):
    def add(
        self, *, user_id: uuid.UUID, tenant_id: uuid.UUID, role: Role, client_id: uuid.UUID | None = None
    ) -> uuid.UUID: ...
    def for_user(self, user_id: uuid.UUID) -> list[Membership]: ...
    def get(self, user_id: uuid.UUID, tenant_id: uuid.UUID) -> Membership | None: ...
    def client_is_linked(self, tenant_id: uuid.UUID, client_id: uuid.UUID) -> bool: ...


class RefreshTokenRepository(Protocol):
    def add(
        self,
        *,
        family_id: uuid.UUID,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID,
        token_hash: bytes,
        issued_at: datetime,
        expires_at: datetime,
    ) -> uuid.UUID: ...
    def lock_by_hash(self, token_hash: bytes) -> RefreshToken | None: ...
    def mark_used(self, token_id: uuid.UUID, at: datetime) -> None: ...
    def revoke_family(self, family_id: uuid.UUID, at: datetime) -> int: ...
    def revoke_for(self, user_id: uuid.UUID, tenant_id: uuid.UUID, at: datetime) -> int: ...


class OneTimeTokenRepository(Protocol):
    def add(
        self,
        *,
        kind: OneTimeTokenKind,
        token_hash: bytes,
        expires_at: datetime,
        user_id: uuid.UUID | None = None,
        tenant_id: uuid.UUID | None = None,
        client_id: uuid.UUID | None = None,
        email: str | None = None,
    ) -> uuid.UUID: ...
    def lock_by_hash(self, kind: OneTimeTokenKind, token_hash: bytes) -> OneTimeToken | None: ...
    def mark_used(self, token_id: uuid.UUID, at: datetime) -> None: ...
    def expire_outstanding(
        self,
        kind: OneTimeTokenKind,
        *,
        at: datetime,
        user_id: uuid.UUID | None = None,
        tenant_id: uuid.UUID | None = None,
        client_id: uuid.UUID | None = None,
    ) -> int: ...


class ClientDirectory(Protocol):
    def contact(self, schema_name: str, client_id: uuid.UUID) -> ClientContact | None: ...


class Mailer(Protocol):
    """Sends one message; raises Unavailable("mail_unavailable") when delivery fails."""

    def send(self, *, to: str, subject: str, body: str) -> None: ...


class JobQueue(Protocol):
    """Enqueues a background job by task name (backend/infrastructure/jobs.py); the worker runs it."""

    def enqueue(self, task_name: str, *, queue: str = "default", **arguments: Any) -> int: ...


class AccessTokenIssuer(Protocol):
    ttl_s: int

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID,
        role: str,
        session_id: uuid.UUID,
        client_id: uuid.UUID | None = None,
    ) -> str: ...


class SchemaManager(Protocol):
    def create(self, schema_name: str) -> str: ...
    def claim_spare(self) -> SpareSchema | None: ...
    def migrate(
        self, schema_name: str, *, from_version: str | None = None, lock_timeout_ms: int | None = None
    ) -> SchemaUpgrade: ...
    def downgrade(self, schema_name: str, revision: str) -> SchemaDowngrade: ...
    def drop(self, schema_name: str) -> None: ...


class AuditLog(Protocol):
    def record(self, event: str, **fields: object) -> None: ...
    def list_page(self, *, tenant_id: uuid.UUID, offset: int, limit: int) -> tuple[list[AuditEvent], int]: ...


class ClientRepository(Protocol):
    def add(self, client: Client) -> Client: ...
    def get(self, client_id: uuid.UUID) -> Client | None: ...
    def exists(self, client_id: uuid.UUID) -> bool: ...
    def update(self, client_id: uuid.UUID, changes: dict, now: datetime) -> Client | None: ...
    def delete(self, client_id: uuid.UUID) -> bool: ...
    def list_page(
        self, *, offset: int, limit: int, search: str | None = None
    ) -> tuple[list[Client], int]: ...


class AppointmentRepository(Protocol):
    def add(self, appointment: Appointment) -> Appointment: ...
    def get(
        self, appointment_id: uuid.UUID, *, client_id: uuid.UUID | None = None, for_update: bool = False
    ) -> Appointment | None: ...
    def update(self, appointment_id: uuid.UUID, changes: dict, now: datetime) -> Appointment | None: ...
    def delete(self, appointment_id: uuid.UUID) -> bool: ...
    def list_page(
        self, *, filters: AppointmentFilter, offset: int, limit: int
    ) -> tuple[list[Appointment], int]: ...


class MediaRepository(Protocol):
    def add(self, media: Media) -> Media: ...
    def get(self, media_id: uuid.UUID, *, client_id: uuid.UUID | None = None) -> Media | None: ...
    def list_page(self, *, filters: MediaFilter, offset: int, limit: int) -> tuple[list[Media], int]: ...
    def soft_delete(self, media_id: uuid.UUID, now: datetime) -> bool: ...
    def soft_delete_for_client(self, client_id: uuid.UUID, now: datetime) -> int: ...
    def deleted_before(self, cutoff: datetime, limit: int) -> list[Media]: ...
    def count_deleted_before(self, cutoff: datetime) -> int: ...
    def hard_delete(self, media_ids: list[uuid.UUID]) -> int: ...


class MediaStorage(Protocol):
    """The tenants' media files, `<media_dir>/<tenant id>/<media id>`: written and removed by
    media id, listed and read by name for the export, removed as a whole with the tenant."""

    def save(self, tenant_id: uuid.UUID, media_id: uuid.UUID, chunks: Iterable[bytes]) -> None: ...
    def open(self, tenant_id: uuid.UUID, name: uuid.UUID | str) -> BinaryIO: ...
    def files(self, tenant_id: uuid.UUID) -> Iterator[str]: ...
    def delete(self, tenant_id: uuid.UUID, media_id: uuid.UUID) -> None: ...
    def delete_tenant(self, tenant_id: uuid.UUID) -> int: ...


class UnitOfWork(Protocol):
    audit: AuditLog

    def __enter__(self) -> Self: ...
    def __exit__(self, *exc_info: object) -> bool | None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class RegistryUnitOfWork(UnitOfWork, Protocol):
    tenants: TenantRepository
    users: UserRepository
    memberships: MembershipRepository
    refresh_tokens: RefreshTokenRepository
    one_time_tokens: OneTimeTokenRepository
    client_directory: ClientDirectory
    schemas: SchemaManager


class ClientLogins(Protocol):
    """The registry rows tied to one of the tenant's client records: the invitations mailed
    for it and the login (membership) made from one."""

    def revoke_invitations(self, client_id: uuid.UUID, at: datetime) -> int: ...
    def remove(self, client_id: uuid.UUID, at: datetime) -> int: ...


class TenantUnitOfWork(UnitOfWork, Protocol):
    clients: ClientRepository
    appointments: AppointmentRepository
    media: MediaRepository
    client_logins: ClientLogins


# --- Data lifecycle: deletion, export, dump/restore, retention (docs/data-lifecycle.md) ---


class DeletionRepository(Protocol):
    def lock(self, tenant_id: uuid.UUID) -> bool: ...
    def schedule(self, tenant_id: uuid.UUID, due_at: datetime) -> None: ...
    def cancel(self, tenant_id: uuid.UUID) -> None: ...
    def remove_tokens(self, tenant_id: uuid.UUID) -> int: ...
    def remove_members(self, tenant_id: uuid.UUID) -> tuple[int, int]: ...
    def tombstone(self, tenant_id: uuid.UUID, now: datetime) -> None: ...


class DeletionUnitOfWork(RegistryUnitOfWork, Protocol):
    deletion: DeletionRepository


class TenantSnapshot(Protocol):
    """One consistent, read-only view of a tenant schema."""

    def schema_version(self) -> str | None: ...
    def tables(self) -> list[str]: ...
    def copy_csv(self, table: str) -> Generator[bytes, None, int]: ...


class ArchiveWriter(Protocol):
    """A zip written as a stream: pulls the members in turn and yields the zip's bytes as they
    are produced."""

    def stream(self, members: Iterable[ArchiveMember]) -> Iterator[bytes]: ...


class TenantArchive(Protocol):
    """An operator archive opened for restore: verified contents, staged media."""

    contents: ArchiveContents
    dump_path: Path  # pg_dump custom format of the source schema
    server_major: int | None  # PostgreSQL major version that wrote the dump (None: not recorded)

    def install_media(self, tenant_id: uuid.UUID) -> int: ...
    def remove_media(self, tenant_id: uuid.UUID) -> None: ...


class TenantArchiver(Protocol):
    def dump(self, tenant: Tenant, out: Path) -> ArchiveSummary: ...


class RestoreRepository(Protocol):
    def load_schema(self, archive: TenantArchive, schema_name: str) -> None: ...
    def revive(self, tenant: Tenant) -> None: ...
    def add_user(self, user: ArchivedUser) -> uuid.UUID: ...


class RestoreUnitOfWork(RegistryUnitOfWork, Protocol):
    restore: RestoreRepository


class RetentionRepository(Protocol):
    def audit_events_before(self, cutoff: datetime) -> int: ...
    def delete_audit_events_before(self, cutoff: datetime) -> int: ...


class RetentionUnitOfWork(RegistryUnitOfWork, Protocol):
    retention: RetentionRepository


class ExportFiles(Protocol):
    """Operator archives under the exports directory."""

    def older_than(self, cutoff: datetime) -> list[Path]: ...
    def remove(self, path: Path) -> bool: ...
