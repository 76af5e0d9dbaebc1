"""One client's rows of a tenant schema for their own data download, from one REPEATABLE READ
READ ONLY snapshot. Every query filters by the client id given (the caller's membership):
nothing of another client can come out. CSVs are written by PostgreSQL's COPY, in chunks,
instants as ISO 8601 in UTC like the API writes them."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager

from psycopg import sql
from sqlalchemy import select, text
from sqlalchemy.engine import Connection, Engine

from backend.core.db import set_tenant_search_path
from backend.core.tenancy import validate_schema_name
from backend.infrastructure.exports import copy_chunks, instant_as_api_text
from backend.infrastructure.sql.clients import clients
from backend.infrastructure.sql.media import media

# What the client is shown in the API, about themselves; never the worker's private notes.
APPOINTMENT_COLUMNS = ("id", "starts_at", "ends_at", "status", "shared_notes", "cancelled_at")
MEDIA_COLUMNS = ("id", "appointment_id", "filename", "content_type", "size_bytes", "sha256", "created_at")
INSTANT_COLUMNS = frozenset({"starts_at", "ends_at", "cancelled_at", "created_at"})


def _select_list(columns: tuple[str, ...]) -> sql.Composable:
    items = []
    for name in columns:
        column = sql.Identifier(name)
        if name in INSTANT_COLUMNS:
            # ISO 8601 in the session's time zone (UTC here), as the workspace export writes it
            items.append(sql.SQL("{} AS {}").format(instant_as_api_text(column), column))
        else:
            items.append(column)
    return sql.SQL(", ").join(items)


class SqlClientSnapshot:
    def __init__(self, connection: Connection, schema_name: str, client_id: uuid.UUID) -> None:
        self._connection = connection
        self._schema = validate_schema_name(schema_name)
        self._client_id = uuid.UUID(str(client_id))

    def client_record(self) -> dict | None:
        row = self._connection.execute(
            select(clients.c.id, clients.c.name, clients.c.email, clients.c.phone, clients.c.created_at)
            .add_columns(clients.c.updated_at)
            .where(clients.c.id == self._client_id)
        ).first()
        if row is None:
            return None
        record = dict(row._mapping)
        record["id"] = str(record["id"])
        for key in ("created_at", "updated_at"):
            record[key] = record[key].isoformat()
        return record

    def appointments_csv(self) -> Generator[bytes, None, int]:
        return self._copy(
            "appointments", APPOINTMENT_COLUMNS, sql.SQL("client_id = {}"), sql.SQL("starts_at, id")
        )

    def media_csv(self) -> Generator[bytes, None, int]:
        return self._copy(
            "media",
            MEDIA_COLUMNS,
            sql.SQL("client_id = {} AND deleted_at IS NULL"),
            sql.SQL("created_at, id"),
        )

    def media_files(self) -> list[tuple[uuid.UUID, str]]:
        rows = self._connection.execute(
            select(media.c.id, media.c.filename)
            .where(media.c.client_id == self._client_id, media.c.deleted_at.is_(None))
            .order_by(media.c.created_at, media.c.id)
        )
        return [(row.id, row.filename) for row in rows]

    def _copy(
        self, table: str, columns: tuple[str, ...], where: sql.SQL, order: sql.SQL
    ) -> Generator[bytes, None, int]:
        statement = sql.SQL(
            "COPY (SELECT {} FROM {} WHERE {} ORDER BY {}) TO STDOUT WITH (FORMAT csv, HEADER true)"
        )
        statement = statement.format(
            _select_list(columns),
            sql.Identifier(self._schema, table),
            where.format(sql.Literal(str(self._client_id))),
            order,
        )
        return copy_chunks(self._connection, statement)


@contextmanager
def open_client_snapshot(
    engine: Engine, schema_name: str, client_id: uuid.UUID, *, timeout_s: int
) -> Iterator[SqlClientSnapshot]:
    """One consistent, read-only view of the client's rows; the timeouts bound how long a slow
    download may hold it (the runtime role: the client's request never needs more)."""
    with engine.connect() as connection:
        connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with connection.begin():
            set_tenant_search_path(connection, schema_name)
            connection.execute(text("SELECT set_config('TimeZone', 'UTC', true)"))
            for setting in ("statement_timeout", "idle_in_transaction_session_timeout"):
                connection.execute(
                    text("SELECT set_config(:name, :value, true)"),
                    {"name": setting, "value": f"{int(timeout_s)}s"},
                )
            yield SqlClientSnapshot(connection, schema_name, client_id)
