"""Tenant schema DDL: create a tenant's schema at head, migrate it, drop it."""

from __future__ import annotations

import logging

from psycopg import errors as pg_errors
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from backend.core.db import distributes_schemas
from backend.core.tenancy import schema_identifier
from backend.domain.errors import Invalid
from backend.domain.tenants import SchemaDowngrade, SchemaUpgrade, SpareSchema, UpgradeMethod
from backend.infrastructure import migrations, step_scripts
from backend.infrastructure.sql.privileges import (
    TENANT_ROLE_MISSING,
    drop_tenant_role,
    grant_new_relations_sql,
    grant_tenant,
)
from backend.infrastructure.sql.spares import SqlSpareRegistry

log = logging.getLogger(__name__)

# The checks of a step script that send a tenant to the chain instead of failing it: its
# schema is not at the registry's version, or it has no tenant role yet.
_CHAIN_INSTEAD = (step_scripts.GUARD_MESSAGE, TENANT_ROLE_MISSING)
_SAVEPOINT = "step_script"


class SqlSchemaManager:
    """Runs as the owner role (but `claim_spare` and `ready_spares`), on the caller's connection
    and transaction.

    `fast_provisioning`: create schemas from the tenant tree's SQL, base to head (the step
    script of step_scripts.py, rendered once per process by Alembic's offline mode), in one
    round trip, instead of running the migration chain; the chain remains the fallback (a
    tree that cannot be rendered) and the reference the script is tested against.
    `spares`: `claim_spare` takes a spare schema from the pool (infrastructure/spares.py),
    through the owner's SECURITY DEFINER `shared.claim_spare_schema`, the one thing of this
    class the runtime role may do (signup); off, it claims nothing and provisioning creates
    every schema itself (owner role only)."""

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
        # On Citus a multi-statement script is propagated whole to the worker, which refuses
        # it (`cannot insert multiple commands into a prepared statement`): the chain creates
        # and migrates distributed schemas, one statement at a time (docs/scale-out.md).
        if self._fast_provisioning and not distributes_schemas(self._connection):
            script = step_scripts.step_script(None, migrations.head_revision("tenant"))
            if script is not None:
                statements = f"{_create_schema_sql(schema_name)};\n{script.for_schema(schema_name)}"
                # One round trip. no_parameters: psycopg must not read `%` in the DDL as placeholders.
                self._connection.exec_driver_sql(statements, execution_options={"no_parameters": True})
                grant_tenant(self._connection, schema_name, self._runtime_role)
                return script.to_revision
        return self.create_with_chain(schema_name)

    def claim_spare(self) -> SpareSchema | None:
        """Take a spare schema at the tenant head, in the caller's transaction: it is the
        caller's once that commits, and back in the pool if it rolls back. None when the pool
        is off or has no spare at head (spares of an older head are never taken)."""
        if not self._spares:
            return None
        return SqlSpareRegistry(self._connection).claim(migrations.head_revision("tenant"))

    def ready_spares(self) -> int:
        """How many spares are ready to claim at the tenant head (0 when the pool is off)."""
        if not self._spares:
            return 0
        return SqlSpareRegistry(self._connection).ready(migrations.head_revision("tenant"))

    def create_with_chain(self, schema_name: str) -> str:
        self._connection.exec_driver_sql(_create_schema_sql(schema_name))
        version = migrations.upgrade_tenant(self._connection, schema_name)
        grant_tenant(self._connection, schema_name, self._runtime_role)
        return version

    def migrate(
        self, schema_name: str, *, from_version: str | None = None, lock_timeout_ms: int | None = None
    ) -> SchemaUpgrade:
        """Upgrade the schema to head inside a savepoint: on failure the schema is as it was
        and the caller's transaction (and the locks it holds) can still record the error.
        `from_version`, the registry's version of the schema: the step's SQL script
        (step_scripts.py) is applied when the step has one, in one round trip with the
        grants; otherwise, or when the schema turns out not to be at `from_version`, the
        migration chain runs. `lock_timeout_ms` bounds how long a DDL statement queues behind
        requests (and so how long requests queue behind it) before this tenant fails and is
        retried next run."""
        head = migrations.head_revision("tenant")
        script = None
        if from_version is not None and not distributes_schemas(self._connection):
            script = step_scripts.step_script(from_version, head)
        if script is not None and self._migrate_by_script(script, schema_name, lock_timeout_ms):
            return SchemaUpgrade(script.to_revision, UpgradeMethod.SCRIPT)
        if lock_timeout_ms is not None:
            self._connection.execute(
                text("SELECT set_config('lock_timeout', :value, true)"),
                {"value": f"{int(lock_timeout_ms)}ms"},
            )
        with self._connection.begin_nested():
            version = migrations.upgrade_tenant(self._connection, schema_name)
            grant_tenant(self._connection, schema_name, self._runtime_role)
        return SchemaUpgrade(version, UpgradeMethod.CHAIN)

    def _migrate_by_script(
        self, script: step_scripts.StepScript, schema_name: str, lock_timeout_ms: int | None
    ) -> bool:
        """Apply the step script and the grants in one round trip; False when the script's
        checks send the tenant to the chain. The savepoint is plain SQL, released at the end
        of the script (one round trip fewer than SQLAlchemy's nested transaction); it is set
        on its own first, so that even a script PostgreSQL cannot parse rolls back to it."""
        self._connection.exec_driver_sql(f"SAVEPOINT {_SAVEPOINT}")
        statements = "\n".join(
            [
                _lock_timeout_sql(lock_timeout_ms),
                script.for_schema(schema_name),
                grant_new_relations_sql(schema_name, self._runtime_role),
                f"RELEASE SAVEPOINT {_SAVEPOINT};",
            ]
        )
        try:
            # no_parameters: psycopg must not read `%` in the DDL as placeholders.
            self._connection.exec_driver_sql(statements, execution_options={"no_parameters": True})
        except DBAPIError as error:
            rollback = f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}"
            self._connection.exec_driver_sql(rollback)
            if not _sends_to_chain(error):
                raise
            diag = error.orig.diag
            log.warning(
                "%s: %s (%s); migrating it by the chain",
                schema_name, diag.message_primary, diag.message_detail or "",
            )  # fmt: skip
            return False
        return True

    def downgrade(self, schema_name: str, revision: str) -> SchemaDowngrade:
        """Run the tenant tree's downgrade of this one schema to `revision` (an ancestor of
        the schema's own version, which is what the downgrade starts from, whatever the
        registry says), then re-apply the grants; in the caller's transaction."""
        current = migrations.tenant_revision(self._connection, schema_name)
        if not migrations.is_below("tenant", revision, current):
            raise Invalid(
                {"to": [f"{revision!r} is not a revision below the schema's current {current!r}"]},
                f"{revision!r} is not a revision below the schema's current {current!r}",
            )
        version = migrations.downgrade_tenant(self._connection, schema_name, revision)
        grant_tenant(self._connection, schema_name, self._runtime_role)
        return SchemaDowngrade(from_version=current, version=version)

    def drop(self, schema_name: str) -> None:
        """Drop the schema and its tenant role (idempotent)."""
        statement = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema_identifier(schema_name))
        self._connection.exec_driver_sql(statement.as_string(None))
        drop_tenant_role(self._connection, schema_name)


def _create_schema_sql(schema_name: str) -> str:
    return sql.SQL("CREATE SCHEMA {}").format(schema_identifier(schema_name)).as_string(None)


def _lock_timeout_sql(lock_timeout_ms: int | None) -> str:
    if lock_timeout_ms is None:
        return ""
    value = sql.Literal(f"{int(lock_timeout_ms)}ms")
    return sql.SQL("SET LOCAL lock_timeout = {};").format(value).as_string(None)


def _sends_to_chain(error: DBAPIError) -> bool:
    orig = error.orig
    return isinstance(orig, pg_errors.RaiseException) and orig.diag.message_primary in _CHAIN_INSTEAD
