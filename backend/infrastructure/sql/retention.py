"""Retention on the database side: old audit events (shared) and soft-deleted media rows
(in each tenant schema).

The media step is generic on purpose: it applies to a tenant schema that has a `media` table
with `id` and `deleted_at` columns, the file being `<media_dir>/<tenant id>/<id>` (the
contract in docs/data-lifecycle.md), and skips a schema that has none.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.types import Uuid

from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.unit_of_work import RegistryUnitOfWork, TenantUnitOfWork


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


class SqlMediaRetention:
    """Soft-deleted media of the tenant whose search path the transaction carries."""

    def __init__(self, connection: Connection, schema_name: str) -> None:
        self._connection = connection
        self._schema = schema_name
        self._applies: bool | None = None

    def _has_media_table(self) -> bool:
        if self._applies is None:
            columns = set(
                self._connection.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns"
                        " WHERE table_schema = :schema AND table_name = 'media'"
                        " AND column_name IN ('id', 'deleted_at')"
                    ),
                    {"schema": self._schema},
                ).scalars()
            )
            self._applies = columns == {"id", "deleted_at"}
        return self._applies

    def expired_count(self, cutoff: datetime) -> int:
        if not self._has_media_table():
            return 0
        return self._connection.execute(
            text("SELECT count(*) FROM media WHERE deleted_at < :cutoff"), {"cutoff": cutoff}
        ).scalar_one()

    def expired(self, cutoff: datetime, limit: int) -> list[str]:
        """Names (ids) of soft-deleted media older than `cutoff`, oldest first, locked."""
        if not self._has_media_table():
            return []
        rows = self._connection.execute(
            text(
                "SELECT id FROM media WHERE deleted_at < :cutoff"
                " ORDER BY deleted_at, id LIMIT :limit FOR UPDATE SKIP LOCKED"
            ),
            {"cutoff": cutoff, "limit": limit},
        ).scalars()
        return [str(media_id) for media_id in rows]

    def remove(self, names: list[str]) -> int:
        """Delete the rows for good; only soft-deleted ones, so a live item is never lost."""
        if not names:
            return 0
        statement = text("DELETE FROM media WHERE id = ANY(:ids) AND deleted_at IS NOT NULL").bindparams(
            bindparam("ids", type_=ARRAY(Uuid()))
        )
        ids = [uuid.UUID(name) for name in names]
        return self._connection.execute(statement, {"ids": ids}).rowcount


class RetentionUnitOfWork(RegistryUnitOfWork):
    def _bind(self, connection: Connection) -> None:
        super()._bind(connection)
        self.retention = SqlRetentionRepository(connection)


class TenantRetentionUnitOfWork(TenantUnitOfWork):
    def _bind(self, connection: Connection) -> None:
        super()._bind(connection)
        self.media_retention = SqlMediaRetention(connection, self.schema_name)
