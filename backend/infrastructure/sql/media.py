"""Media rows (`media`, in the tenant schema) and their repository. The bytes are in the
media storage (backend/infrastructure/storage.py), keyed by tenant id and media id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Table,
    Text,
    Uuid,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from backend.domain.media import Media, MediaFilter
from backend.infrastructure.sql.metadata import tenant_metadata
from backend.infrastructure.sql.paging import page_with_total

media = Table(
    "media",
    tenant_metadata,
    Column("id", Uuid, primary_key=True),
    # SET NULL: deleting a client first soft-deletes their media (the CHECK below insists),
    # then the purge removes rows and files after the retention period.
    Column("client_id", Uuid, ForeignKey("clients.id", ondelete="SET NULL")),
    # SET NULL: deleting an appointment keeps its files with the client.
    Column("appointment_id", Uuid, ForeignKey("appointments.id", ondelete="SET NULL")),
    Column("filename", Text, nullable=False),  # cleaned display name, never a path
    Column("content_type", Text, nullable=False),  # sniffed from the bytes
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("uploaded_by", Uuid, nullable=False),  # shared.users.id; no FK across schemas
    Column("uploaded_by_role", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deleted_at", DateTime(timezone=True)),
    CheckConstraint("client_id IS NOT NULL OR deleted_at IS NOT NULL", name="linked"),
    CheckConstraint("size_bytes >= 0", name="size"),
    CheckConstraint("uploaded_by_role IN ('worker', 'client')", name="uploaded_by_role"),
    # The worker's list of live media, newest first.
    Index(
        "ix_media_created_at_id",
        "created_at",
        "id",
        postgresql_where="deleted_at IS NULL",
    ),
    # A client's media (filter, the client's own view, client deletion, the FK action).
    Index("ix_media_client_id_created_at_id", "client_id", "created_at", "id"),
    # An appointment's media (filter, the FK action).
    Index("ix_media_appointment_id", "appointment_id"),
    # The purge: soft-deleted rows past the retention period.
    Index("ix_media_deleted_at", "deleted_at", postgresql_where="deleted_at IS NOT NULL"),
)


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _to_media(row) -> Media:
    return Media(
        id=row.id,
        client_id=row.client_id,
        appointment_id=row.appointment_id,
        filename=row.filename,
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        uploaded_by=row.uploaded_by,
        uploaded_by_role=row.uploaded_by_role,
        created_at=_utc(row.created_at),
        deleted_at=_utc(row.deleted_at),
    )


def _live():
    return media.c.deleted_at.is_(None)


def _deleted_before(cutoff: datetime):
    # `IS NOT NULL` is implied by `<`, but spelled out so ix_media_deleted_at's predicate matches.
    return media.c.deleted_at.is_not(None), media.c.deleted_at < cutoff


class SqlMediaRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, item: Media) -> Media:
        row = self._connection.execute(
            insert(media)
            .values(
                id=item.id,
                client_id=item.client_id,
                appointment_id=item.appointment_id,
                filename=item.filename,
                content_type=item.content_type,
                size_bytes=item.size_bytes,
                sha256=item.sha256,
                uploaded_by=item.uploaded_by,
                uploaded_by_role=item.uploaded_by_role,
                created_at=item.created_at,
            )
            .returning(media)
        ).one()
        return _to_media(row)

    def get(self, media_id: uuid.UUID, *, client_id: uuid.UUID | None = None) -> Media | None:
        """A live media item; with `client_id`, only if it is linked to that client."""
        query = select(media).where(media.c.id == media_id, _live())
        if client_id is not None:
            query = query.where(media.c.client_id == client_id)
        row = self._connection.execute(query).first()
        return _to_media(row) if row is not None else None

    def list_page(self, *, filters: MediaFilter, offset: int, limit: int) -> tuple[list[Media], int]:
        conditions = [_live()]
        if filters.client_id is not None:
            conditions.append(media.c.client_id == filters.client_id)
        if filters.appointment_id is not None:
            conditions.append(media.c.appointment_id == filters.appointment_id)
        page = select(media).where(*conditions).order_by(media.c.created_at.desc(), media.c.id.desc())
        rows, total = page_with_total(self._connection, page, offset=offset, limit=limit)
        return [_to_media(row) for row in rows], total

    def soft_delete(self, media_id: uuid.UUID, now: datetime) -> bool:
        result = self._connection.execute(
            update(media).where(media.c.id == media_id, _live()).values(deleted_at=now)
        )
        return result.rowcount > 0

    def soft_delete_for_client(self, client_id: uuid.UUID, now: datetime) -> int:
        result = self._connection.execute(
            update(media).where(media.c.client_id == client_id, _live()).values(deleted_at=now)
        )
        return result.rowcount

    def deleted_before(self, cutoff: datetime, limit: int) -> list[Media]:
        """Soft-deleted media whose deletion is older than `cutoff`, oldest first, locked for
        the purge; rows another purge holds are skipped, so two overlapping runs share the work."""
        rows = self._connection.execute(
            select(media)
            .where(*_deleted_before(cutoff))
            .order_by(media.c.deleted_at, media.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_to_media(row) for row in rows]

    def count_deleted_before(self, cutoff: datetime) -> int:
        """How many items `deleted_before` would hand out in all (the purge's dry run)."""
        return self._connection.execute(
            select(func.count()).select_from(media).where(*_deleted_before(cutoff))
        ).scalar_one()

    def oldest_deleted_at(self):
        """When the oldest soft-deleted item still in the trash was deleted (None: empty)."""
        return self._connection.execute(select(func.min(media.c.deleted_at))).scalar_one()

    def hard_delete(self, media_ids: list[uuid.UUID]) -> int:
        """Remove rows for good; only soft-deleted ones, so a live item is never lost."""
        if not media_ids:
            return 0
        result = self._connection.execute(
            delete(media).where(media.c.id.in_(media_ids), media.c.deleted_at.is_not(None))
        )
        return result.rowcount
