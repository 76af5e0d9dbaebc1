"""The worker's export: a zip written as a stream, fed from one read-only snapshot.

Memory stays bounded however big the tenant: COPY output is read in chunks and each chunk
goes through the zip compressor as it comes. The zip is written without seeking (data
descriptors, Zip64 for every entry), which is what lets it go straight to the HTTP response.
"""

from __future__ import annotations

import stat
import uuid
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from isal import isal_zlib
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from stream_zip import NO_COMPRESSION_64, ZIP_64, stream_zip

from backend.core.db import set_tenant_search_path
from backend.core.tenancy import validate_schema_name
from backend.domain.lifecycle import ArchiveMember, SourceColumn

CHUNK_BYTES = 256 * 1024
# Deflate is most of the worker's CPU in an export (docs/benchmarks/history-to-session-11.md,
# `export`): entries are deflated by ISA-L (isal), level 1, which on CSV is ~4x faster than
# zlib's level 1 and still ~8% smaller. The stream is plain raw deflate: any unzip reads it.
ISAL_LEVEL = 1
RAW_DEFLATE_WBITS = -15  # raw deflate, 32 KiB window, no header: what zip members hold
FILE_MODE = stat.S_IFREG | 0o600
# Bookkeeping of the migration tool, not the tenant's data (its revision is in the manifest).
EXCLUDED_TABLES = frozenset({"alembic_version"})
INSTANT_TYPE = "timestamp with time zone"


def instant_as_api_text(instant: sql.Composable) -> sql.Composable:
    """An instant as the API writes it: ISO 8601 in the session's time zone (UTC in the export's
    snapshot), fractional seconds without trailing zeros (`2026-12-05T10:00:00.1+00:00`).

    `to_jsonb` formats with the same PostgreSQL routine as `to_json`, so the text is identical
    for every value, infinities and BC dates included (pinned against `to_json` by
    tests/integration/lifecycle_data/test_export_instants.py), for less PostgreSQL time: COPY of
    1,000,000 appointments (4 instants set, 1 NULL) on PostgreSQL 18 ~1.65 s against ~1.95 s
    with `to_json(...) #>> '{}'` (plain COPY ~1.0 s); `replace(col::text, ' ', 'T') || ':00'`
    (guarded for BC and infinity) measured the same, so the simpler exact form is kept."""
    return sql.SQL("to_jsonb({}) #>> '{{}}'").format(instant)


class ZipStream:
    """Zips archive members as a stream with stream-zip: each member's chunks are deflated
    (by ISA-L, through stream-zip's public `get_compressobj` hook) or stored as they come, and
    the zip bytes are yielded as they are produced."""

    def __init__(self, *, timestamp: datetime | None = None) -> None:
        self._modified_at = timestamp or datetime.now(UTC)

    def stream(self, members: Iterable[ArchiveMember]) -> Iterator[bytes]:
        return stream_zip(
            (self._member(member) for member in members),
            chunk_size=CHUNK_BYTES,
            get_compressobj=_isal_compressobj,
        )

    def _member(self, member: ArchiveMember) -> tuple:
        # Stored members (media, already compressed) are buffered by stream-zip to learn their
        # CRC before the header: one file at a time, at most MEDIA_MAX_BYTES.
        method = ZIP_64 if member.compress else NO_COMPRESSION_64
        return member.name, self._modified_at, FILE_MODE, method, member.chunks


def _isal_compressobj():
    return isal_zlib.compressobj(ISAL_LEVEL, isal_zlib.DEFLATED, RAW_DEFLATE_WBITS)


class SqlTenantSnapshot:
    """A tenant schema seen through one REPEATABLE READ READ ONLY transaction."""

    def __init__(self, connection: Connection, schema_name: str) -> None:
        self._connection = connection
        self._schema = validate_schema_name(schema_name)

    def tables(self) -> list[str]:
        """Every table of the schema, from the catalog: tables added by any migration are
        exported without this code knowing them."""
        rows = self._connection.execute(
            text(
                "SELECT c.relname FROM pg_catalog.pg_class c"
                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
                " ORDER BY c.relname"
            ),
            {"schema": self._schema},
        )
        return [name for (name,) in rows if name not in EXCLUDED_TABLES]

    def schema_version(self) -> str | None:
        if "alembic_version" not in self._all_tables():
            return None
        statement = sql.SQL("SELECT version_num FROM {}").format(
            sql.Identifier(self._schema, "alembic_version")
        )
        return self._connection.exec_driver_sql(statement.as_string(None)).scalar_one_or_none()

    def _all_tables(self) -> set[str]:
        rows = self._connection.execute(
            text(
                "SELECT c.relname FROM pg_catalog.pg_class c"
                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = :schema AND c.relkind = 'r'"
            ),
            {"schema": self._schema},
        )
        return {name for (name,) in rows}

    def columns(self, table: str) -> list[SourceColumn]:
        """The table's columns in order, with their types, from the catalog."""
        rows = self._connection.execute(
            text(
                "SELECT a.attname, format_type(a.atttypid, NULL), a.attnotnull FROM pg_catalog.pg_attribute a"
                " WHERE a.attrelid = CAST(quote_ident(:schema) || '.' || quote_ident(:table) AS regclass)"
                " AND a.attnum > 0 AND NOT a.attisdropped"
                " ORDER BY a.attnum"
            ),
            {"schema": self._schema, "table": table},
        ).all()
        return [SourceColumn(name, db_type, not_null) for name, db_type, not_null in rows]

    def _select_list(self, table: str, renames: Sequence[tuple[str, str]] | None) -> sql.Composable:
        """The exported columns (every column, or `renames`' (column, CSV name) pairs), instants
        written as the API writes them (ISO 8601 in UTC, `2026-01-31T09:30:00.000000+00:00`) by
        PostgreSQL itself: no per-row Python."""
        types = {column.name: column.db_type for column in self.columns(table)}
        pairs = renames if renames is not None else [(name, name) for name in types]
        columns = []
        for name, label in pairs:
            column = sql.Identifier(name)
            if types[name] == INSTANT_TYPE:
                columns.append(sql.SQL("{} AS {}").format(instant_as_api_text(column), sql.Identifier(label)))
            elif label != name:
                columns.append(sql.SQL("{} AS {}").format(column, sql.Identifier(label)))
            else:
                columns.append(column)
        return sql.SQL(", ").join(columns)

    def media_files(self) -> list[tuple[uuid.UUID, str]]:
        """(id, stored media type) of every media row, deleted ones included (the export flags
        them); none when the schema has no media table."""
        if "media" not in self._all_tables():
            return []
        statement = sql.SQL("SELECT id, content_type FROM {} ORDER BY id").format(
            sql.Identifier(self._schema, "media")
        )
        return [tuple(row) for row in self._connection.exec_driver_sql(statement.as_string(None))]

    def copy_csv(
        self, table: str, columns: Sequence[tuple[str, str]] | None = None
    ) -> Generator[bytes, None, int]:
        """The table as CSV with a header line, in chunks; returns the number of rows. `columns`:
        the (column, name in the header) pairs to write, in order; every column by default."""
        statement = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT WITH (FORMAT csv, HEADER true)")
        statement = statement.format(self._select_list(table, columns), sql.Identifier(self._schema, table))
        return copy_chunks(self._connection, statement)


def copy_chunks(connection: Connection, statement: sql.Composable) -> Generator[bytes, None, int]:
    """A COPY ... TO STDOUT on the connection, in chunks of about CHUNK_BYTES; returns the
    number of rows."""
    cursor = connection.connection.driver_connection.cursor()
    buffer = bytearray()
    try:
        with cursor.copy(statement) as copy:
            # libpq hands COPY out one row per message (no bigger reads exist): this loop
            # runs once per row, so it calls read() itself rather than through the
            # iterator's extra generator, and only appends.
            read = copy.read
            while data := read():
                buffer += data
                if len(buffer) >= CHUNK_BYTES:
                    yield bytes(buffer)
                    buffer.clear()
        if buffer:
            yield bytes(buffer)
        return cursor.rowcount
    finally:
        cursor.close()


@contextmanager
def open_snapshot(engine: Engine, schema_name: str, *, timeout_s: int) -> Iterator[SqlTenantSnapshot]:
    """One consistent, read-only view of the tenant; the timeouts bound how long a slow
    download may hold it (an old snapshot holds back vacuum for the whole database)."""
    with engine.connect() as connection:
        connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with connection.begin():
            set_tenant_search_path(connection, schema_name)
            connection.execute(text("SELECT set_config('TimeZone', 'UTC', true)"))  # instants in UTC
            for setting in ("statement_timeout", "idle_in_transaction_session_timeout"):
                connection.execute(
                    text("SELECT set_config(:name, :value, true)"),
                    {"name": setting, "value": f"{int(timeout_s)}s"},
                )
            yield SqlTenantSnapshot(connection, schema_name)
