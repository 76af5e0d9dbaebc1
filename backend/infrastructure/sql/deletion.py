"""Registry side of tenant deletion: schedule, cancel, and the purge steps on shared rows."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, case, delete, exists, func, select, update
from sqlalchemy.engine import Connection

from backend.domain.lifecycle import tombstone_slug
from backend.domain.tenants import TenantStatus
from backend.infrastructure.sql.identity import memberships, one_time_tokens, refresh_tokens, users
from backend.infrastructure.sql.scheduled import SqlScheduledWorkRepository
from backend.infrastructure.sql.tenants import tenants
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork

SCHEDULED = TenantStatus.DELETION_SCHEDULED.value


class SqlDeletionRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def lock(self, tenant_id: uuid.UUID) -> bool:
        """Lock the registry row for this transaction (a cancel and a purge step serialise)."""
        row = self._connection.execute(
            select(tenants.c.id).where(tenants.c.id == tenant_id).with_for_update()
        ).first()
        return row is not None

    def schedule(self, tenant_id: uuid.UUID, due_at: datetime) -> None:
        self._connection.execute(
            update(tenants)
            .where(tenants.c.id == tenant_id)
            .values(
                # Rescheduling keeps the state from before the first scheduling.
                deletion_previous_status=case(
                    (tenants.c.status == SCHEDULED, tenants.c.deletion_previous_status),
                    else_=tenants.c.status,
                ),
                status=SCHEDULED,
                deletion_due_at=due_at,
            )
        )

    def cancel(self, tenant_id: uuid.UUID) -> None:
        self._connection.execute(
            update(tenants)
            .where(tenants.c.id == tenant_id, tenants.c.status == SCHEDULED)
            .values(
                status=func.coalesce(tenants.c.deletion_previous_status, TenantStatus.ACTIVE.value),
                deletion_previous_status=None,
                deletion_due_at=None,
            )
        )

    def remove_tokens(self, tenant_id: uuid.UUID) -> int:
        """Delete the tenant's refresh tokens and one-time tokens (verification, invitation):
        a deleted row cannot be refreshed, replayed or accepted."""
        removed = 0
        for table in (refresh_tokens, one_time_tokens):
            removed += self._connection.execute(delete(table).where(table.c.tenant_id == tenant_id)).rowcount
        return removed

    def remove_members(self, tenant_id: uuid.UUID) -> tuple[int, int]:
        """Delete the users who were only this tenant's clients, then every membership.
        Users with another membership, and workers (account holders), keep their account."""
        other = memberships.alias("other")
        client_only = list(
            self._connection.execute(
                select(memberships.c.user_id).where(
                    memberships.c.tenant_id == tenant_id,
                    memberships.c.role == "client",
                    ~exists().where(
                        and_(other.c.user_id == memberships.c.user_id, other.c.tenant_id != tenant_id)
                    ),
                )
            ).scalars()
        )
        removed_memberships = self._connection.execute(
            delete(memberships).where(memberships.c.tenant_id == tenant_id)
        ).rowcount
        removed_users = 0
        if client_only:
            removed_users = self._connection.execute(
                delete(users).where(users.c.id.in_(client_only))
            ).rowcount
        return removed_memberships, removed_users

    def tombstone(self, tenant_id: uuid.UUID, now: datetime) -> None:
        """Keep the id, the schema name and the dates; drop everything that names someone."""
        self._connection.execute(
            update(tenants)
            .where(tenants.c.id == tenant_id)
            .values(
                status=TenantStatus.DELETED.value,
                deleted_at=now,
                slug=tombstone_slug(tenant_id),
                name="",
                deletion_previous_status=None,
                last_migration_error=None,
            )
        )
        # Its schema is gone: nothing of it is due for the retention run any more.
        SqlScheduledWorkRepository(self._connection).forget(tenant_id)


class SqlDeletionUnitOfWork(SqlRegistryUnitOfWork):
    """The registry unit of work plus the deletion steps (owner role for the purge)."""

    def _bind(self, connection: Connection) -> None:
        super()._bind(connection)
        self.deletion = SqlDeletionRepository(connection)
