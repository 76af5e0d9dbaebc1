"""The tenant's clients (`clients`, in the tenant schema) and their repository."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Table, Text, Uuid, func, select
from sqlalchemy.engine import Connection

from backend.domain.clients import Client
from backend.infrastructure.sql.metadata import tenant_metadata

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


def _to_client(row) -> Client:
    return Client(
        id=row.id,
        name=row.name,
        email=row.email,
        phone=row.phone,
        notes=row.notes,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlClientRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def list_page(self, *, offset: int, limit: int) -> tuple[list[Client], int]:
        total = self._connection.execute(select(func.count()).select_from(clients)).scalar_one()
        rows = self._connection.execute(
            select(clients).order_by(clients.c.name, clients.c.id).offset(offset).limit(limit)
        )
        return [_to_client(row) for row in rows], total
