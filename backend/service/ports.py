"""What the services need from the outside world, as Protocols.

The SQL versions live in backend/infrastructure; the entry points (api, cli) wire them in,
and unit tests pass small fakes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol, Self

from backend.domain.clients import Client
from backend.domain.identity import Role
from backend.domain.tenants import Tenant, TenantStatus


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
    def try_lock(self, tenant_id: uuid.UUID) -> bool: ...
    def count_migratable(self) -> int: ...
    def list_behind(self, head: str) -> list[Tenant]: ...


class UserRepository(Protocol):
    def id_by_email(self, email: str) -> uuid.UUID | None: ...
    def add(self, user_id: uuid.UUID, email: str, name: str, password_hash: str | None) -> None: ...


class MembershipRepository(Protocol):
    def add(
        self, *, user_id: uuid.UUID, tenant_id: uuid.UUID, role: Role, client_id: uuid.UUID | None = None
    ) -> uuid.UUID: ...


class SchemaManager(Protocol):
    def create(self, schema_name: str) -> str: ...
    def migrate(self, schema_name: str, *, lock_timeout_ms: int | None = None) -> str: ...
    def drop(self, schema_name: str) -> None: ...


class AuditLog(Protocol):
    def record(self, event: str, **fields: object) -> None: ...


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
    schemas: SchemaManager


class TenantUnitOfWork(UnitOfWork, Protocol):
    clients: ClientRepository
