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


CITUS_SWITCHES = ("citus.enable_schema_based_sharding", "citus.enable_ddl_propagation")


def run_migrations_online() -> None:
    with migration_connection(config) as connection:
        # On a Citus coordinator the owner's connections distribute every new schema
        # (core.db); the shared schema stays a local schema of the coordinator, and its
        # objects are not propagated to the workers (docs/scale-out.md): a propagated
        # function would make Citus propagate the owner role as the owner, which only a
        # superuser may do. Placeholder settings, harmless without Citus.
        saved = {
            name: connection.execute(text("SELECT current_setting(:name, true)"), {"name": name}).scalar()
            for name in CITUS_SWITCHES
        }
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
        # Roles made after the migrations (the tenant group) must reach the workers: the
        # switches go back to what the connection had (a session default set when it opened,
        # which RESET would not restore), for the rest of this transaction.
        for name, value in saved.items():
            if value is not None:
                connection.execute(
                    text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value}
                )


if context.is_offline_mode():
    raise SystemExit("offline mode is not supported: migrations run against a database")
run_migrations_online()
