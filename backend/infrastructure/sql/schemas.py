"""Tenant schema DDL: create a tenant's schema at head, migrate it, drop it."""

from __future__ import annotations

from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import Connection

from backend.core.tenancy import schema_identifier
from backend.domain.tenants import SpareSchema
from backend.infrastructure import ddl_cache, migrations
from backend.infrastructure.sql.privileges import drop_tenant_role, grant_tenant
from backend.infrastructure.sql.spares import SqlSpareRegistry


class SqlSchemaManager:
    """Runs as the owner role, on the caller's connection and transaction.

    `fast_provisioning`: create schemas from the cached head script (ddl_cache) instead of
    running the migration chain; the chain remains the fallback and the reference.
    `spares`: `claim_spare` takes a spare schema from the pool (infrastructure/spares.py);
    off, it claims nothing and provisioning creates every schema itself."""

    def __init__(
        self,
        connection: Connection,
        runtime_role: str | None,
        *,
        fast_provisioning: bool = True,
        spares: bool = False,
    ) -> None:
        self._connection = connection
        self._runtime_role = runtime_role
        self._fast_provisioning = fast_provisioning
        self._spares = spares

    def create(self, schema_name: str) -> str:
        """Create the schema with every tenant table at head; return the revision."""
        if self._fast_provisioning:
            script = ddl_cache.head_script(self._connection.engine, self._runtime_role)
            if script is not None:
                version = script.apply(self._connection, schema_name)
                grant_tenant(self._connection, schema_name, self._runtime_role)
                return version
        return self.create_with_chain(schema_name)

    def claim_spare(self) -> SpareSchema | None:
        """Take a spare schema at the tenant head, in the caller's transaction: it is the
        caller's once that commits, and back in the pool if it rolls back. None when the pool
        is off or has no spare at head (spares of an older head are never taken)."""
        if not self._spares:
            return None
        return SqlSpareRegistry(self._connection).claim(migrations.head_revision("tenant"))

    def create_with_chain(self, schema_name: str) -> str:
        statement = sql.SQL("CREATE SCHEMA {}").format(schema_identifier(schema_name))
        self._connection.exec_driver_sql(statement.as_string(None))
        version = migrations.upgrade_tenant(self._connection, schema_name)
        grant_tenant(self._connection, schema_name, self._runtime_role)
        return version

    def migrate(self, schema_name: str, *, lock_timeout_ms: int | None = None) -> str:
        """Upgrade the schema to head inside a savepoint: on failure the schema is as it was
        and the caller's transaction (and the locks it holds) can still record the error.
        `lock_timeout_ms` bounds how long a DDL statement queues behind requests (and so how
        long requests queue behind it) before this tenant fails and is retried next run."""
        if lock_timeout_ms is not None:
            self._connection.execute(
                text("SELECT set_config('lock_timeout', :value, true)"),
                {"value": f"{int(lock_timeout_ms)}ms"},
            )
        with self._connection.begin_nested():
            version = migrations.upgrade_tenant(self._connection, schema_name)
            grant_tenant(self._connection, schema_name, self._runtime_role)
        return version

    def drop(self, schema_name: str) -> None:
        """Drop the schema and its tenant role (idempotent)."""
        statement = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema_identifier(schema_name))
        self._connection.exec_driver_sql(statement.as_string(None))
        drop_tenant_role(self._connection, schema_name)
