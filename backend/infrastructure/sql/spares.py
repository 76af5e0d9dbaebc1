"""The pool of spare tenant schemas (`shared.spare_schemas`) and its repository.

A spare is a complete tenant schema at a tenant revision, with its tenant role and grants,
built ahead of time under a fresh UUID4 by the worker (infrastructure/spares.py). Its row here
is written in the transaction that builds it, so a row always means a complete schema. The
provisioning transaction claims one by deleting its row (`claim`, through the owner's SECURITY
DEFINER `shared.claim_spare_schema`, shared revision 0008, which the API's runtime role may
call): the new tenant takes the spare's id, so its schema name is already right; a rollback
puts the row, hence the spare, back.
"""

from __future__ import annotations

import uuid
from collections import Counter

from sqlalchemy import (
    CheckConstraint,
    Column,
    ColumnElement,
    DateTime,
    Table,
    Text,
    Uuid,
    column,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Connection

from backend.domain.tenants import SpareSchema, schema_name_for
from backend.infrastructure.sql.metadata import shared_metadata

spare_schemas = Table(
    "spare_schemas",
    shared_metadata,
    Column("id", Uuid, primary_key=True),
    Column("schema_name", Text, nullable=False, unique=True),
    Column("revision", Text, nullable=False),  # the tenant revision the schema was built at
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The name is the id's, as a tenant's is (domain.tenants.schema_name_for).
    CheckConstraint("schema_name = 'tenant_' || replace(id::text, '-', '')", name="schema_name"),
)


class SqlSpareRegistry:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, spare_id: uuid.UUID, revision: str) -> None:
        self._connection.execute(
            insert(spare_schemas).values(
                id=spare_id, schema_name=schema_name_for(spare_id), revision=revision
            )
        )

    def claim(self, revision: str) -> SpareSchema | None:
        """Take the oldest spare at `revision` in one statement; the row stays locked, and is
        only gone, when the caller's transaction commits. SKIP LOCKED: two transactions
        claiming at once take different spares, and neither waits for the other.

        Through the owner's SECURITY DEFINER function (shared migration 0008), the same for
        every caller: the API's runtime role may run it but may not delete a spare's row."""
        claimed = func.shared.claim_spare_schema(revision).table_valued(
            column("id", Uuid), column("revision", Text)
        )
        row = self._connection.execute(select(claimed.c.id, claimed.c.revision)).first()
        return SpareSchema(id=row.id, revision=row.revision) if row else None

    def ready(self, revision: str) -> int:
        """How many spares are ready at `revision` (the runtime role may read the pool)."""
        return self._connection.execute(
            select(func.count()).select_from(spare_schemas).where(spare_schemas.c.revision == revision)
        ).scalar_one()

    def take_other_than(self, revisions: set[str], *, only: set[str] | None = None) -> SpareSchema | None:
        """Take one spare whose revision is not in `revisions` (and, unless `only` is None, is
        in `only`), for the caller to drop in the same transaction."""
        condition = spare_schemas.c.revision.not_in(revisions)
        if only is not None:
            condition = condition & spare_schemas.c.revision.in_(only)
        return self._take(condition)

    def _take(self, condition: ColumnElement[bool]) -> SpareSchema | None:
        picked = (
            select(spare_schemas.c.id)
            .where(condition)
            .order_by(spare_schemas.c.created_at, spare_schemas.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        row = self._connection.execute(
            delete(spare_schemas)
            .where(spare_schemas.c.id == picked)
            .returning(spare_schemas.c.id, spare_schemas.c.revision)
        ).first()
        return SpareSchema(id=row.id, revision=row.revision) if row else None

    def count_by_revision(self) -> Counter[str]:
        rows = self._connection.execute(
            select(spare_schemas.c.revision, func.count()).group_by(spare_schemas.c.revision)
        )
        return Counter({revision: count for revision, count in rows})
