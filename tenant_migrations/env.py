"""Alembic environment applied to one tenant schema.

The schema comes from the caller (`config.attributes["tenant_schema"]`) or from
`-x tenant=<schema>`; it is validated and only ever used quoted. Tenant tables carry no
schema in their metadata: the transaction-local search path decides where they live, and
each tenant keeps its own `<schema>.alembic_version`.

Offline (`alembic -n tenant upgrade FROM:TO --sql`, and the step scripts of fleet
migrations, infrastructure/step_scripts.py) renders SQL for no schema in particular: the
version table's schema is a token that the step script replaces per tenant.
"""

from alembic import context

from backend.core.db import set_tenant_search_path
from backend.core.tenancy import validate_schema_name
from backend.infrastructure import step_scripts
from backend.infrastructure.migration_env import migration_connection
from backend.infrastructure.sql import tenant_metadata

config = context.config


def tenant_schema() -> str:
    schema = config.attributes.get("tenant_schema") or context.get_x_argument(as_dictionary=True).get(
        "tenant"
    )
    return validate_schema_name(schema)


def include_name(name, type_, parent_names) -> bool:
    # The version table lives in the tenant schema, which is also the default schema here.
    return not (type_ == "table" and name == "alembic_version")


def run_migrations_online() -> None:
    schema = tenant_schema()
    with migration_connection(config) as connection:
        context.configure(
            connection=connection,
            target_metadata=tenant_metadata,
            version_table_schema=schema,
            include_name=include_name,
            compare_type=True,
        )
        with context.begin_transaction():
            set_tenant_search_path(connection, schema)
            context.run_migrations()


def run_migrations_offline() -> None:
    step_scripts.configure_offline(context, target_metadata=tenant_metadata)
    context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
