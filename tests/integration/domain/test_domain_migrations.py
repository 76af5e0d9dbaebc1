"""The domain revision: models == migrations, and it downgrades and upgrades again.

Runs inside one rolled-back transaction (PostgreSQL DDL is transactional)."""

from __future__ import annotations

import uuid

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from backend.domain.tenants import schema_name_for
from backend.infrastructure import migrations
from backend.infrastructure.sql import tenant_metadata
from tests.owner import owner_engine


def _not_version_table(name, type_, parent_names) -> bool:
    return not (type_ == "table" and name == "alembic_version")


def _tables(connection, schema) -> set[str]:
    query = text("SELECT tablename FROM pg_tables WHERE schemaname = :s")
    return set(connection.execute(query, {"s": schema}).scalars())


def test_tenant_models_match_migrations_and_t0002_round_trips(runtime):
    schema = schema_name_for(uuid.uuid4())
    with owner_engine().connect() as connection:
        transaction = connection.begin()
        try:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            migrations.upgrade_tenant(connection, schema)
            assert {"clients", "appointments", "media"} <= _tables(connection, schema)
            context = MigrationContext.configure(
                connection, opts={"include_name": _not_version_table, "compare_type": True}
            )
            assert compare_metadata(context, tenant_metadata) == []
            migrations.downgrade_tenant(connection, schema, "t0001")
            assert _tables(connection, schema) == {"alembic_version", "clients"}
            assert migrations.upgrade_tenant(connection, schema) == migrations.head_revision("tenant")
        finally:
            transaction.rollback()
