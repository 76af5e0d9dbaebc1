"""The tenant's clients (`clients`, in the tenant schema) and their repository."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Index, Table, Text, Uuid, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from backend.core.db import TenantScope
from backend.domain.clients import Client, search_pattern
from backend.infrastructure.sql.metadata import tenant_metadata
from backend.infrastructure.sql.paging import page_with_total

clients = Table(
    "clients",
    tenant_metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("email", Text),
    Column("phone", Text),
    Column("notes", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# Unique per workspace, case-insensitively -> 409 client_email_taken.
Index("uq_clients_email_lower", func.lower(clients.c.email), unique=True)
# The list order (name, case-insensitively; id breaks ties so pages are stable).
Index("ix_clients_lower_name_id", func.lower(clients.c.name), clients.c.id)
# Prefix search (`?q=`): `lower(x) LIKE 'ab%'` can use a btree only with the pattern
# operator class whatever the database collation (docs/index-review.md).
Index(
    "ix_clients_lower_name_pattern",
    func.lower(clients.c.name).label("lower_name"),
    postgresql_ops={"lower_name": "text_pattern_ops"},
)
Index(
    "ix_clients_lower_email_pattern",
    func.lower(clients.c.email).label("lower_email"),
    postgresql_ops={"lower_email": "text_pattern_ops"},
)

WRITABLE = ("name", "email", "phone", "notes")


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _to_client(row) -> Client:
    return Client(
        id=row.id,
        name=row.name,
        email=row.email,
        phone=row.phone,
        notes=row.notes,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


# The list in its order, built once: a statement's construction costs more than its cached
# compilation on every request (its where() and limits return new statements).
_LIST = select(clients).order_by(func.lower(clients.c.name), clients.c.id)
# The unfiltered page as SQL text, compiled once: the page with its total (paging.py), then
# LIMIT and OFFSET as integer literals, so that it reads in one simple-query message together
# with the tenant scope (TenantScope.read). Columns in the table's order, the total last.
_PAGE_SQL = str(
    _LIST.add_columns(func.count().over().label("total_count")).compile(dialect=postgresql.dialect())
)

_COUNT_SQL = str(select(func.count()).select_from(clients).compile(dialect=postgresql.dialect()))


def _client_from_tuple(row: tuple) -> Client:
    id_, name, email, phone, notes, created_at, updated_at = row[:7]
    return Client(
        id=id_,
        name=name,
        email=email,
        phone=phone,
        notes=notes,
        created_at=_utc(created_at),
        updated_at=_utc(updated_at),
    )


class SqlClientRepository:
    def __init__(self, scope: TenantScope) -> None:
        self._scope = scope

    @property
    def _connection(self) -> Connection:
        return self._scope.connection  # opens the tenant's transaction when first used

    def add(self, client: Client) -> Client:
        row = self._connection.execute(
            insert(clients)
            .values(
                id=client.id,
                name=client.name,
                email=client.email,
                phone=client.phone,
                notes=client.notes,
                created_at=client.created_at,
                updated_at=client.updated_at,
            )
            .returning(clients)
        ).one()
        return _to_client(row)

    def get(self, client_id: uuid.UUID) -> Client | None:
        row = self._connection.execute(select(clients).where(clients.c.id == client_id)).first()
        return _to_client(row) if row is not None else None

    def exists(self, client_id: uuid.UUID) -> bool:
        query = select(clients.c.id).where(clients.c.id == client_id)
        return self._connection.execute(query).first() is not None

    def update(self, client_id: uuid.UUID, changes: dict, now: datetime) -> Client | None:
        values = {key: changes[key] for key in WRITABLE if key in changes}
        row = self._connection.execute(
            update(clients)
            .where(clients.c.id == client_id)
            .values(**values, updated_at=now)
            .returning(clients)
        ).first()
        return _to_client(row) if row is not None else None

    def delete(self, client_id: uuid.UUID) -> bool:
        result = self._connection.execute(delete(clients).where(clients.c.id == client_id))
        return result.rowcount > 0

    def list_page(self, *, offset: int, limit: int, search: str | None = None) -> tuple[list[Client], int]:
        if not search:
            rows = self._scope.read(f"{_PAGE_SQL} LIMIT {int(limit)} OFFSET {int(offset)}")
            if rows:
                return [_client_from_tuple(row) for row in rows], rows[0][-1]
            # Past the last page: no row carries the total (paging.py).
            return [], self._scope.read(_COUNT_SQL)[0][0]
        condition = None
        if search:
            # lower() on both sides: PostgreSQL folds case the same way for value and pattern.
            pattern = func.lower(search_pattern(search))
            condition = or_(
                func.lower(clients.c.name).like(pattern), func.lower(clients.c.email).like(pattern)
            )
        page = _LIST
        if condition is not None:
            page = page.where(condition)
        rows, total = page_with_total(self._connection, page, offset=offset, limit=limit)
        return [_to_client(row) for row in rows], total
