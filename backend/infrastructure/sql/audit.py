"""The append-only audit trail (`shared.audit_events`).

Only an allow-listed, small metadata dict is stored: never passwords, tokens, hashes,
file contents, request bodies or free-text PII.
"""

from __future__ import annotations

import uuid

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Table,
    Text,
    Uuid,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from backend.domain.audit import AuditEvent
from backend.infrastructure.sql.metadata import shared_metadata
from backend.infrastructure.sql.paging import page_with_total

audit_events = Table(
    "audit_events",
    shared_metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # No foreign key: the trail outlives the tenant and the user it mentions.
    Column("tenant_id", Uuid),
    Column("actor_user_id", Uuid),
    Column("actor_role", Text),
    Column("event", Text, nullable=False),
    Column("target_type", Text),
    Column("target_id", Text),
    Column("request_id", Text),
    Column("outcome", Text, nullable=False, server_default="success"),
    Column("metadata", JSONB, nullable=False, server_default="{}"),
    Index("ix_audit_events_tenant_id_occurred_at", "tenant_id", "occurred_at"),
    Index("ix_audit_events_occurred_at", "occurred_at"),
)

ALLOWED_METADATA_KEYS = frozenset(
    {
        "reason",
        "code",
        "slug",
        "schema_version",
        "from_version",
        "count",
        "bytes",
        "grace_days",
        "route",
        "method",
        "days",
        "logins_removed",
        "required",
        "dropped",
        "node",
        "from_node",
        "mode",  # tenant.moved: the transfer mode asked (auto | force_logical | block_writes)
        "transfer",  # tenant.moved: how Citus copied (logical | block_writes)
        "schema_name",  # tenant.distributed: a spare schema has no tenant to name it by
        "role_login",  # tenant.distributed: whether its tenant role was made LOGIN by this run
    }
)


class SqlAuditLog:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def record(
        self,
        event: str,
        *,
        tenant_id: uuid.UUID | None = None,
        actor_user_id: uuid.UUID | None = None,
        actor_role: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        request_id: str | None = None,
        outcome: str = "success",
        metadata: dict | None = None,
    ) -> None:
        safe = {k: v for k, v in (metadata or {}).items() if k in ALLOWED_METADATA_KEYS}
        self._connection.execute(
            insert(audit_events).values(
                tenant_id=tenant_id,
                actor_user_id=actor_user_id,
                actor_role=actor_role,
                event=event,
                target_type=target_type,
                target_id=target_id,
                request_id=request_id,
                outcome=outcome,
                metadata=safe,
            )
        )

    def list_page(self, *, tenant_id: uuid.UUID, offset: int, limit: int) -> tuple[list[AuditEvent], int]:
        """One tenant's trail, newest first, with the total count."""
        page = (
            select(audit_events)
            .where(audit_events.c.tenant_id == tenant_id)
            .order_by(audit_events.c.occurred_at.desc(), audit_events.c.id.desc())
        )
        rows, total = page_with_total(self._connection, page, offset=offset, limit=limit)
        return [
            AuditEvent(
                id=row.id,
                occurred_at=row.occurred_at,
                tenant_id=row.tenant_id,
                actor_user_id=row.actor_user_id,
                actor_role=row.actor_role,
                event=row.event,
                target_type=row.target_type,
                target_id=row.target_id,
                request_id=row.request_id,
                outcome=row.outcome,
                metadata=dict(row._mapping["metadata"]),
            )
            for row in rows
        ], total
