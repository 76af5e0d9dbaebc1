"""Alembic environment of the shared schema (`shared.alembic_version`)."""

from alembic import context
from sqlalchemy import text

from backend.infrastructure.migration_env import migration_connection
from backend.infrastructure.sql import shared_metadata

config = context.config


def include_object(obj, name, type_, reflected, compare_to):
    # Only the shared schema is ours to compare; tenant schemas have their own tree.
    if type_ == "table":
        return obj.schema == "shared"
    return True


def run_migrations_online() -> None:
    with migration_connection(config) as connection:
        # On a Citus coordinator the owner's connections distribute every new schema
        # (core.db); the shared schema stays a local schema of the coordinator, and its
        # objects are not propagated to the workers (docs/scale-out.md): a propagated
        # function would make Citus propagate the owner role as the owner, which only a
        # superuser may do. Placeholder settings, harmless without Citus.
        connection.execute(text("SET LOCAL citus.enable_schema_based_sharding = off"))
        connection.execute(text("SET LOCAL citus.enable_ddl_propagation = off"))
        connection.execute(text("CREATE SCHEMA IF NOT EXISTS shared"))
        context.configure(
            connection=connection,
            target_metadata=shared_metadata,
            version_table_schema="shared",
            include_schemas=True,
            include_object=include_object,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        # Roles made after the migrations (the tenant group) must reach the workers.
        connection.execute(text("RESET citus.enable_ddl_propagation"))
        connection.execute(text("RESET citus.enable_schema_based_sharding"))


if context.is_offline_mode():
    raise SystemExit("offline mode is not supported: migrations run against a database")
run_migrations_online()
