"""Restore of an operator archive, inside the caller's transaction.

`pg_restore` only turns the dump into its SQL script; the script runs on our own connection,
in the same transaction as the migration to head and the registry rows, so a restore either
happens completely or not at all. The schema name is rewritten on the way (outside COPY data,
which is passed through untouched): the same tenant gets its own name back, a new tenant
gets `tenant_<new id>`, whether or not the source schema still exists.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from psycopg import sql
from sqlalchemy import exists, insert, select, text, update
from sqlalchemy.engine import Connection

from backend.core.db import distributes_schemas
from backend.core.tenancy import schema_identifier, validate_schema_name
from backend.domain.lifecycle import ArchivedUser
from backend.domain.tenants import Tenant
from backend.infrastructure import migrations
from backend.infrastructure.archives import ArchiveError
from backend.infrastructure.pg_tools import find_tools, restore_script
from backend.infrastructure.sql.identity import users
from backend.infrastructure.sql.scheduled import SqlMediaTrash
from backend.infrastructure.sql.tenants import tenants
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork

# psql meta-commands pg_restore writes around the script (CVE-2025-8714); nothing else is expected.
_PSQL_GUARDS = (b"\\restrict", b"\\unrestrict")
_END_OF_COPY = (b"\\.\n", b"\\.\r\n")


def check_known_revision(revision: str | None) -> None:
    """The archive's schema must be one this release can migrate from."""
    if revision is None:
        raise ArchiveError("the archive's schema has no migration revision")
    script = ScriptDirectory.from_config(migrations.alembic_config("tenant"))
    try:
        found = script.get_revision(revision)
    except CommandError:
        found = None
    if found is None:
        raise ArchiveError(
            f"the archive's schema is at revision {revision!r}, unknown to this release "
            "(restore it with the release that wrote it, or a newer one)"
        )


def check_server_major(archive_major: int | None, server_major: int) -> None:
    """pg_restore reads dumps of its own and older majors only, and the client tools must match
    the server (pg_tools.find_tools): an archive of a newer major cannot go into an older server.
    Refused before pg_restore runs, in one line naming both versions."""
    if archive_major is not None and archive_major > server_major:
        raise ArchiveError(
            f"the archive was dumped from PostgreSQL {archive_major}; this server runs PostgreSQL "
            f"{server_major}: restore it into PostgreSQL {archive_major} or newer"
        )


_DOLLAR_TAG = re.compile(rb"\$[A-Za-z_0-9]*\$")


def split_statements(lines: list[bytes]) -> list[bytes]:
    """pg_dump's script as single statements: each ends with `;` at the end of a line, outside
    a quoted string (an odd number of `'` so far: pg_dump doubles quotes inside strings, with
    standard_conforming_strings on) and outside a dollar-quoted body."""
    statements: list[bytes] = []
    current: list[bytes] = []
    quotes = 0
    dollar: bytes | None = None
    for line in lines:
        current.append(line)
        for tag in _DOLLAR_TAG.findall(line):
            if dollar is None:
                dollar = tag
            elif tag == dollar:
                dollar = None
        if dollar is None:
            quotes += line.count(b"'")
        if dollar is None and quotes % 2 == 0 and line.rstrip().endswith(b";"):
            statements.append(b"".join(current))
            current, quotes = [], 0
    if b"".join(current).strip():
        statements.append(b"".join(current))
    return statements


class SqlRestoreRepository:
    def __init__(self, connection: Connection, pg_bin_dir: Path | None) -> None:
        self._connection = connection
        self._pg_bin_dir = pg_bin_dir

    def load_schema(self, archive, schema_name: str) -> None:
        source = validate_schema_name(archive.contents.tenant.schema_name).encode()
        target = validate_schema_name(schema_name).encode()
        server_major = self._connection.dialect.server_version_info[0]
        check_server_major(archive.server_major, server_major)
        check_known_revision(archive.contents.schema_version)
        tools = find_tools(server_major, self._pg_bin_dir)
        rename = re.compile(rb"\b" + re.escape(source) + rb"\b")
        cursor = self._connection.connection.driver_connection.cursor()
        try:
            with restore_script(tools, archive.dump_path) as lines:
                self._run_script(cursor, lines, rename, target)
        finally:
            cursor.close()
        self._note_trash(schema_name)

    def _note_trash(self, schema_name: str) -> None:
        """Soft-deleted media came back with the schema: the registry notes them, so the
        retention run finds this tenant (backend/infrastructure/sql/scheduled.py)."""
        media_table = sql.SQL("{}.media").format(schema_identifier(schema_name))
        found = self._connection.execute(text("SELECT to_regclass(:t)"), {"t": media_table.as_string(None)})
        if found.scalar() is None:  # an archive from before the media table
            return
        statement = sql.SQL("SELECT min(deleted_at) FROM {}").format(media_table).as_string(None)
        oldest = self._connection.exec_driver_sql(statement).scalar()
        if oldest is not None:
            SqlMediaTrash(self._connection, schema_name).trashed(oldest)

    def _run_script(self, cursor, lines: Iterator[bytes], rename: re.Pattern, target: bytes) -> None:
        pending: list[bytes] = []
        for line in lines:
            if line.startswith(b"\\"):
                if line.startswith(_PSQL_GUARDS):
                    continue
                raise ArchiveError(f"unexpected psql command in the dump: {line[:40]!r}")
            line = rename.sub(target, line)
            if line.startswith(b"COPY ") and line.rstrip().endswith(b" FROM stdin;"):
                self._execute(cursor, pending)
                pending = []
                with cursor.copy(line.rstrip()[:-1]) as copy:
                    # COPY text format, exactly as pg_dump wrote it: rows are not rewritten.
                    for data in lines:
                        if data in _END_OF_COPY:
                            break
                        copy.write(data)
                continue
            pending.append(line)
        self._execute(cursor, pending)

    def _execute(self, cursor, lines: list[bytes]) -> None:
        # Several statements, no parameters: psycopg sends them as one simple query. A Citus
        # coordinator forwards a DDL statement's whole query string to the worker, which refuses
        # several commands in one (as for step scripts): there, one statement at a time.
        meaningful = [line for line in lines if line.strip() and not line.startswith(b"--")]
        if not meaningful:
            return
        if not distributes_schemas(self._connection):
            cursor.execute(b"".join(lines))
            return
        for statement in split_statements(meaningful):
            cursor.execute(statement)

    def revive(self, tenant: Tenant) -> None:
        """Turn a tombstone back into the tenant (same id and schema name)."""
        self._connection.execute(
            update(tenants)
            .where(tenants.c.id == tenant.id)
            .values(
                slug=tenant.slug,
                name=tenant.name,
                status=tenant.status.value,
                plan=tenant.plan.value,
                trial_ends_at=tenant.trial_ends_at,
                deleted_at=None,
                deletion_due_at=None,
                deletion_previous_status=None,
                last_migration_error=None,
            )
        )

    def add_user(self, user: ArchivedUser) -> uuid.UUID:
        """Recreate a user the purge removed: the archived id when it is free, else a new one."""
        taken = self._connection.execute(select(exists().where(users.c.id == user.id))).scalar()
        user_id = uuid.uuid4() if taken else user.id
        self._connection.execute(
            insert(users).values(
                id=user_id,
                email=user.email,
                name=user.name,
                password_hash=user.password_hash,
                verified_at=user.verified_at,
                created_at=user.created_at,
            )
        )
        return user_id


class SqlRestoreUnitOfWork(SqlRegistryUnitOfWork):
    """Owner role. The dump's script changes session settings (search_path, timeouts):
    the connection is discarded afterwards instead of going back to the pool."""

    def __init__(self, engine, runtime_role: str | None, pg_bin_dir: Path | None) -> None:
        super().__init__(engine, runtime_role)
        self._pg_bin_dir = pg_bin_dir

    def _bind(self, connection: Connection) -> None:
        super()._bind(connection)
        self.restore = SqlRestoreRepository(connection, self._pg_bin_dir)

    def __exit__(self, exc_type, exc, tb):
        if self.connection is not None:
            self.rollback()
            self.connection.invalidate()
        return super().__exit__(exc_type, exc, tb)
