"""`tenants migrate` over a fleet of distributed schemas on both workers: a new tenant migration
reaches every schema through the coordinator, one tenant that cannot take it fails alone
(recorded, reported, exit 1) and the next run finishes it."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select, text, update

from backend.core.db import set_tenant_search_path
from backend.infrastructure import migrations
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.infrastructure.sql.tenants import tenants as tenants_table
from tests.citus.test_distributed_schemas import _placements
from tests.integration.lifecycle.conftest import add_revision, copy_tree, in_schema
from tests.integration.lifecycle.test_fleet_migrations import ADD_ARCHIVED_AT, DROP_ARCHIVED_AT
from tests.owner import owner_engine

FLEET = 110


@pytest.fixture()
def retire_at(runtime):
    """Every tenant left at the given temporary revision is dropped and marked deleted after the
    test, so later tests (with the repository's tree) never meet that revision."""
    revisions: list[str] = []
    yield revisions.append
    with owner_engine().begin() as connection:
        rows = connection.execute(
            select(tenants_table.c.id, tenants_table.c.schema_name).where(
                tenants_table.c.schema_version.in_(revisions)
            )
        ).all()
        for row in rows:
            SqlSchemaManager(connection, None).drop(row.schema_name)
            connection.execute(
                update(tenants_table)
                .where(tenants_table.c.id == row.id)
                .values(status="deleted", name="", slug=f"deleted-{row.id.hex}")
            )


def _registry(runtime, fleet) -> dict:
    with owner_engine().connect() as connection:
        rows = connection.execute(
            select(
                tenants_table.c.id, tenants_table.c.schema_version, tenants_table.c.last_migration_error
            ).where(tenants_table.c.id.in_([t.id for t in fleet]))
        )
        return {row.id: (row.schema_version, row.last_migration_error) for row in rows}


def test_a_new_migration_reaches_every_distributed_schema_and_a_failure_stays_alone(
    app, database, runtime, make_tenant, tmp_path, retire_at
):
    fleet = [make_tenant(verified=False) for _ in range(FLEET)]
    ports = _placements(database)
    assert Counter(ports[t.schema_name] for t in fleet).keys() == {
        w.port for w in database["cluster"].workers
    }
    before = fleet[0].schema_version
    broken = fleet[FLEET // 2]
    with owner_engine().begin() as connection:  # this tenant cannot take the revision
        in_schema(connection, "ALTER TABLE {schema}.clients ADD COLUMN archived_at date", broken.schema_name)
    tree = copy_tree(tmp_path / "tenant_migrations")
    head = add_revision(tree, "c_archived_at", ADD_ARCHIVED_AT, DROP_ARCHIVED_AT)
    retire_at(head)
    runner = app.test_cli_runner()

    with migrations.script_location_override("tenant", tree):
        first = runner.invoke(args=["tenants", "migrate", "--jobs", "2"])
        assert first.exit_code == 1, first.output
        assert "1 tenant(s) failed to migrate" in first.output
        assert f"{broken.slug} " in first.output and "failed" in first.output
        registry = _registry(runtime, fleet)
        assert registry.pop(broken.id)[0] == before
        assert set(registry.values()) == {(head, None)}
        assert _registry(runtime, [broken])[broken.id][1]  # the error is recorded

        # Every schema took it on its worker: a row with the new column goes in everywhere.
        for tenant in fleet:
            if tenant is broken:
                continue
            with owner_engine().begin() as connection:
                set_tenant_search_path(connection, tenant.schema_name)
                connection.execute(
                    text("INSERT INTO clients (id, name, archived_at) VALUES (gen_random_uuid(), 'x', now())")
                )

        with owner_engine().begin() as connection:  # the operator fixes the cause
            in_schema(connection, "ALTER TABLE {schema}.clients DROP COLUMN archived_at", broken.schema_name)
        second = runner.invoke(args=["tenants", "migrate", "--jobs", "2"])
        assert second.exit_code == 0, second.output
        assert "1 migrated" in second.output
    assert set(_registry(runtime, fleet).values()) == {(head, None)}
