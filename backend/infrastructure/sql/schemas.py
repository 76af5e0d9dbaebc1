"""Tenant schema DDL: create (and migrate to head) or drop a tenant's schema."""

from __future__ import annotations

from psycopg import sql
from sqlalchemy.engine import Connection

from backend.core.tenancy import schema_identifier
from backend.infrastructure import migrations
from backend.infrastructure.sql.privileges import drop_tenant_role, grant_tenant


class SqlSchemaManager:
    """Runs as the owner role, on the caller's connection and transaction."""

    def __init__(self, connection: Connection, runtime_role: str | None) -> None:
        self._connection = connection
        self._runtime_role = runtime_role

    def create(self, schema_name: str) -> str:
        """Create the schema with every tenant table at head; return the revision."""
        statement = sql.SQL("CREATE SCHEMA {}").format(schema_identifier(schema_name))
        self._connection.exec_driver_sql(statement.as_string(None))
        version = migrations.upgrade_tenant(self._connection, schema_name)
        grant_tenant(self._connection, schema_name, self._runtime_role)
        return version

    def migrate(self, schema_name: str) -> str:
        version = migrations.upgrade_tenant(self._connection, schema_name)
        grant_tenant(self._connection, schema_name, self._runtime_role)
        return version

    def drop(self, schema_name: str) -> None:
        """Drop the schema and its tenant role (idempotent)."""
        statement = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema_identifier(schema_name))
        self._connection.exec_driver_sql(statement.as_string(None))
        drop_tenant_role(self._connection, schema_name)
