"""Both Alembic trees: up, down to base, up again; models match migrations (`alembic check`).

Everything runs inside one transaction that is rolled back (PostgreSQL DDL is transactional),
so the shared schema the rest of the session uses is untouched."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from alembic import command
from sqlalchemy import text

from backend.core.config import PROJECT_ROOT
from backend.domain.tenants import schema_name_for
from backend.infrastructure import migrations
from tests.owner import owner_engine


def _tables(connection, schema):
    return set(
        connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
        ).scalars()
    )


def test_shared_tree_up_down_up(runtime):
    with owner_engine().connect() as connection:
        transaction = connection.begin()
        try:
            migrations.upgrade_shared(connection)
            command.downgrade(migrations.alembic_config("shared", connection), "base")
            assert _tables(connection, "shared") == {"alembic_version"}
            migrations.upgrade_shared(connection)
            assert migrations.shared_revision(connection) == migrations.head_revision("shared")
            command.check(migrations.alembic_config("shared", connection))
        finally:
            transaction.rollback()


def test_tenant_tree_up_down_up_and_check(runtime):
    schema = schema_name_for(uuid.uuid4())
    with owner_engine().connect() as connection:
        transaction = connection.begin()
        try:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            migrations.upgrade_tenant(connection, schema)
            migrations.downgrade_tenant(connection, schema, "base")
            assert _tables(connection, schema) == {"alembic_version"}
            assert migrations.upgrade_tenant(connection, schema) == migrations.head_revision("tenant")
            command.check(migrations.alembic_config("tenant", connection, tenant_schema=schema))
        finally:
            transaction.rollback()


def test_alembic_command_line_uses_the_named_section(settings, make_tenant):
    tenant = make_tenant()
    env = {**os.environ, "MIGRATION_DATABASE_URL": settings.owner_database_url}
    alembic = [sys.executable, "-m", "alembic", "-c", str(PROJECT_ROOT / "alembic.ini")]
    shared = subprocess.run([*alembic, "-n", "shared", "current"], env=env, capture_output=True, text=True)
    assert shared.returncode == 0, shared.stderr
    assert migrations.head_revision("shared") in shared.stdout
    tenant_run = subprocess.run(
        [*alembic, "-n", "tenant", "-x", f"tenant={tenant.schema_name}", "current"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert tenant_run.returncode == 0, tenant_run.stderr
    assert migrations.head_revision("tenant") in tenant_run.stdout
    refused = subprocess.run(
        [*alembic, "-n", "tenant", "-x", "tenant=public", "current"], env=env, capture_output=True, text=True
    )
    assert refused.returncode != 0
    assert "not a tenant schema name" in refused.stderr
