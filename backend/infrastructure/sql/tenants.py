"""The tenant registry (`shared.tenants`) and its repository."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Table,
    Text,
    Uuid,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection

from backend.domain.tenants import Plan, Tenant, TenantStatus
from backend.infrastructure.sql.metadata import shared_metadata

TOMBSTONE_RULE = "status <> 'deleted' OR (name = '' AND slug = 'deleted-' || replace(id::text, '-', ''))"

tenants = Table(
    "tenants",
    shared_metadata,
    Column("id", Uuid, primary_key=True),
    Column("slug", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("schema_name", Text, nullable=False, unique=True),
    Column("status", Text, nullable=False),
    Column("plan", Text, nullable=False, server_default="trial"),
    Column("trial_ends_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("disabled_at", DateTime(timezone=True)),
    Column("deletion_due_at", DateTime(timezone=True)),
    Column("deleted_at", DateTime(timezone=True)),
    Column("schema_version", Text),
    Column("last_migration_error", Text),
    # The status a scheduled deletion returns to when cancelled (a disabled tenant stays so).
    Column("deletion_previous_status", Text),
    # The owner's setting: workers must have a second factor (docs/security.md).
    Column("mfa_required_for_workers", Boolean, nullable=False, server_default=false()),
    CheckConstraint(
        "status IN ('provisioning','active','disabled','deletion_scheduled','deleted')",
        name="status",
    ),
    CheckConstraint("plan IN ('trial','paid')", name="plan"),
    CheckConstraint("schema_name ~ '^tenant_[0-9a-f]{32}$'", name="schema_name"),
    CheckConstraint(
        "deletion_previous_status IN ('provisioning','active','disabled')",
        name="deletion_previous_status",
    ),
    # A purged tenant keeps a tombstone that names nobody (docs/data-lifecycle.md).
    CheckConstraint(TOMBSTONE_RULE, name="tombstone"),
)


# Tenants whose schema exists and must follow the migrations (a `provisioning` row is never
# committed: provisioning is one transaction; a `deleted` tenant has no schema any more).
MIGRATABLE_STATUSES = tuple(
    s.value for s in TenantStatus if s not in (TenantStatus.PROVISIONING, TenantStatus.DELETED)
)


def tenant_lock_key(tenant_id: uuid.UUID) -> int:
    """The advisory-lock key of a tenant: its id's first 64 bits, as PostgreSQL's signed bigint.

    Every job that must not run twice at once on one tenant (migration, purge) takes it."""
    return int.from_bytes(tenant_id.bytes[:8], "big", signed=True)


def _to_tenant(row) -> Tenant:
    return Tenant(
        id=row.id,
        slug=row.slug,
        name=row.name,
        schema_name=row.schema_name,
        status=TenantStatus(row.status),
        plan=Plan(row.plan),
        trial_ends_at=row.trial_ends_at,
        created_at=row.created_at,
        schema_version=row.schema_version,
        disabled_at=row.disabled_at,
        deletion_due_at=row.deletion_due_at,
        deleted_at=row.deleted_at,
        last_migration_error=row.last_migration_error,
    )


class SqlTenantRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, tenant: Tenant) -> None:
        self._connection.execute(
            insert(tenants).values(
                id=tenant.id,
                slug=tenant.slug,
                name=tenant.name,
                schema_name=tenant.schema_name,
                status=tenant.status.value,
                plan=tenant.plan.value,
                trial_ends_at=tenant.trial_ends_at,
                created_at=tenant.created_at,
                schema_version=tenant.schema_version,
            )
        )

    def get(self, tenant_id: uuid.UUID) -> Tenant | None:
        row = self._connection.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
        return _to_tenant(row) if row else None

    def get_by_slug(self, slug: str) -> Tenant | None:
        row = self._connection.execute(select(tenants).where(tenants.c.slug == slug)).first()
        return _to_tenant(row) if row else None

    def list(self, status: TenantStatus | None = None) -> list[Tenant]:
        query = select(tenants).order_by(tenants.c.created_at, tenants.c.id)
        if status is not None:
            query = query.where(tenants.c.status == status.value)
        return [_to_tenant(row) for row in self._connection.execute(query)]

    def record_migration(self, tenant_id: uuid.UUID, version: str | None, error: str | None) -> None:
        values: dict = {"last_migration_error": error}
        if version is not None:
            values["schema_version"] = version
        self._connection.execute(update(tenants).where(tenants.c.id == tenant_id).values(**values))

    def lock_by_slug(self, slug: str) -> Tenant | None:
        """Read the row and hold it (FOR UPDATE) until the transaction ends."""
        row = self._connection.execute(
            select(tenants).where(tenants.c.slug == slug).with_for_update()
        ).first()
        return _to_tenant(row) if row else None

    def set_status(self, tenant_id: uuid.UUID, status: TenantStatus, *, disabled_at: datetime | None) -> None:
        self._connection.execute(
            update(tenants)
            .where(tenants.c.id == tenant_id)
            .values(status=status.value, disabled_at=disabled_at)
        )

    def set_trial_end(self, tenant_id: uuid.UUID, trial_ends_at: datetime) -> None:
        self._connection.execute(
            update(tenants).where(tenants.c.id == tenant_id).values(trial_ends_at=trial_ends_at)
        )

    def mfa_required(self, tenant_id: uuid.UUID, *, for_update: bool = False) -> bool | None:
        """The workspace's second-factor setting (None: no such tenant)."""
        query = select(tenants.c.mfa_required_for_workers).where(tenants.c.id == tenant_id)
        if for_update:
            query = query.with_for_update()
        return self._connection.execute(query).scalar_one_or_none()

    def set_mfa_required(self, tenant_id: uuid.UUID, required: bool) -> None:
        self._connection.execute(
            update(tenants).where(tenants.c.id == tenant_id).values(mfa_required_for_workers=required)
        )

    def try_lock(self, tenant_id: uuid.UUID) -> bool:
        """Take the tenant's advisory lock until the transaction ends, without waiting."""
        return bool(
            self._connection.execute(
                select(func.pg_try_advisory_xact_lock(tenant_lock_key(tenant_id)))
            ).scalar_one()
        )

    def count_migratable(self) -> int:
        return self._connection.execute(
            select(func.count()).where(tenants.c.status.in_(MIGRATABLE_STATUSES))
        ).scalar_one()

    def list_behind(self, head: str) -> list[Tenant]:
        """Tenants the registry does not show at `head`, or whose last migration failed:
        one query on the registry, no tenant schema opened."""
        query = (
            select(tenants)
            .where(
                tenants.c.status.in_(MIGRATABLE_STATUSES),
                or_(
                    tenants.c.schema_version.is_distinct_from(head),
                    tenants.c.last_migration_error.is_not(None),
                ),
            )
            .order_by(tenants.c.created_at, tenants.c.id)
        )
        return [_to_tenant(row) for row in self._connection.execute(query)]
