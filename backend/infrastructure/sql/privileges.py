"""Grants that let the runtime role (the API) use what the owner role creates.

The runtime role gets USAGE and DML only: it creates nothing, owns nothing, and may only
insert into the audit trail. Grants are re-applied after every migration, so a table added
by a migration is usable by the API without a manual step.
"""

from __future__ import annotations

from psycopg import sql
from sqlalchemy.engine import Connection

from backend.core.tenancy import schema_identifier


def _exec(connection: Connection, statement: sql.Composed) -> None:
    connection.exec_driver_sql(statement.as_string(None))


def grant_schema(connection: Connection, schema: sql.Identifier, runtime_role: str) -> None:
    role = sql.Identifier(runtime_role)
    _exec(connection, sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
    _exec(
        connection,
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(
            schema, role
        ),
    )
    _exec(
        connection,
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(schema, role),
    )


def grant_shared(connection: Connection, runtime_role: str | None) -> None:
    if not runtime_role:
        return
    grant_schema(connection, sql.Identifier("shared"), runtime_role)
    # The audit trail is append-only for the API.
    _exec(
        connection,
        sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON shared.audit_events FROM {}").format(
            sql.Identifier(runtime_role)
        ),
    )


def grant_tenant(connection: Connection, schema_name: str, runtime_role: str | None) -> None:
    if runtime_role:
        grant_schema(connection, schema_identifier(schema_name), runtime_role)
