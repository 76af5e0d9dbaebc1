"""What the services need from the outside world, as Protocols.

The SQL versions live in backend/infrastructure; the entry points (api, cli) wire them in,
and unit tests pass small fakes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol, Self

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
from backend.domain.tenants import Tenant, TenantStatus


class TenantRepository(Protocol):
    def add(self, tenant: Tenant) -> None: ...
    def get(self, tenant_id: uuid.UUID) -> Tenant | None: ...
    def get_by_slug(self, slug: str) -> Tenant | None: ...
    def list(self, status: TenantStatus | None = None) -> list[Tenant]: ...
    def record_migration(self, tenant_id: uuid.UUID, version: str | None, error: str | None) -> None: ...


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


class AccessTokenIssuer(Protocol):
    ttl_s: int

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID,
        role: str,
        client_id: uuid.UUID | None = None,
        session_id: uuid.UUID | None = None,
    ) -> str: ...


class SchemaManager(Protocol):
    def create(self, schema_name: str) -> str: ...
    def migrate(self, schema_name: str) -> str: ...
    def drop(self, schema_name: str) -> None: ...


class AuditLog(Protocol):
    def record(self, event: str, **fields: object) -> None: ...
    def list_page(
        self, *, tenant_id: uuid.UUID, offset: int, limit: int
    ) -> tuple[list[AuditEvent], int]: ...


class ClientRepository(Protocol):
    def list_page(self, *, offset: int, limit: int) -> tuple[list[Client], int]: ...


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


class TenantUnitOfWork(UnitOfWork, Protocol):
    clients: ClientRepository
