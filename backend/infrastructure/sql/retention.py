"""Retention on the database side: old audit events (shared). Soft-deleted media go through
the media repository (backend/infrastructure/sql/media.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection

from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.scheduled import SqlScheduledWorkRepository
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork


class SqlRetentionRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def audit_events_before(self, cutoff: datetime) -> int:
        return self._connection.execute(
            select(func.count()).select_from(audit_events).where(audit_events.c.occurred_at < cutoff)
        ).scalar_one()

    def delete_audit_events_before(self, cutoff: datetime) -> int:
        """Owner role only: the API's role may only insert into the trail."""
        return self._connection.execute(
            delete(audit_events).where(audit_events.c.occurred_at < cutoff)
        ).rowcount


class SqlRetentionUnitOfWork(SqlRegistryUnitOfWork):
    def _bind(self, connection: Connection) -> None:
        super()._bind(connection)
        self.retention = SqlRetentionRepository(connection)
        self.scheduled = SqlScheduledWorkRepository(connection)
