"""Fleet migrations: per-tenant transactions and advisory locks, failures isolated and
recorded, re-runs resume, concurrent runs never migrate a tenant twice, and a run with
nothing pending reads only the registry."""

from __future__ import annotations

import threading

from sqlalchemy import select, text

from backend.core.db import set_tenant_search_path
from backend.domain.tenants import UpgradeMethod
from backend.infrastructure import migrations
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.infrastructure.sql.tenants import tenants as tenants_table
from backend.service import tenants as service
from backend.service.tenants import MigrationOutcome, MigrationPlan
from tests.integration.lifecycle.conftest import add_revision, in_schema
from tests.owner import owner_engine

ADD_ARCHIVED_AT = """
op.add_column("clients", sa.Column("archived_at", sa.DateTime(timezone=True)))
op.create_index("ix_clients_archived_at", "clients", ["archived_at"])
"""
DROP_ARCHIVED_AT = """
op.drop_index("ix_clients_archived_at", table_name="clients")
op.drop_column("clients", "archived_at")
"""


def plan_for(uow_factory, tenants: list, head: str) -> MigrationPlan:
    """The service's plan, narrowed to this test's tenants (the database is shared)."""
    plan = service.plan_migration(head=head, uow=uow_factory())
    ids = {t.id for t in tenants}
    return MigrationPlan(head, plan.fleet_size, [t for t in plan.pending if t.id in ids])


def registry(runtime, tenant) -> tuple[str | None, str | None]:
    with owner_engine().connect() as connection:
        row = connection.execute(
            select(tenants_table.c.schema_version, tenants_table.c.last_migration_error).where(
                tenants_table.c.id == tenant.id
            )
        ).one()
    return row.schema_version, row.last_migration_error


def has_column(runtime, tenant, column: str) -> bool:
    with owner_engine().connect() as connection:
        return bool(
            connection.execute(
                text(
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = :schema "
                    "AND table_name = 'clients' AND column_name = :column"
                ),
                {"schema": tenant.schema_name, "column": column},
            ).first()
        )


def outcomes(results) -> dict:
    return {r.tenant_id: r.outcome for r in results}


def test_migrates_every_tenant_behind_head_and_records_it(make_tenant, runtime, tenant_tree, retire, factory):
    fleet = [make_tenant() for _ in range(3)]
    retire(fleet)
    head = add_revision(tenant_tree, "x_archived_at", ADD_ARCHIVED_AT, DROP_ARCHIVED_AT)
    with migrations.script_location_override("tenant", tenant_tree):
        uow_factory = factory()
        plan = plan_for(uow_factory, fleet, head)
        assert {t.id for t in plan.pending} == {t.id for t in fleet}
        results = list(service.migrate_tenants(plan=plan, uow_factory=uow_factory, jobs=2))
        assert set(outcomes(results).values()) == {MigrationOutcome.MIGRATED}, results
        # Each worker process rendered the step once and applied it to its tenants.
        assert {r.method for r in results} == {UpgradeMethod.SCRIPT}
        for tenant in fleet:
            assert registry(runtime, tenant) == (head, None)
            assert has_column(runtime, tenant, "archived_at")
        assert plan_for(uow_factory, fleet, head).pending == []


def test_a_failing_tenant_is_recorded_the_others_migrate_and_a_rerun_resumes(
    make_tenant, runtime, tenant_tree, retire, factory
):
    fleet = [make_tenant() for _ in range(4)]
    retire(fleet)
    broken = fleet[1]
    old_head = broken.schema_version
    # The injected cause: the column the revision adds already exists in one tenant.
    with owner_engine().begin() as connection:
        in_schema(connection, "ALTER TABLE {schema}.clients ADD archived_at date", broken.schema_name)
    head = add_revision(tenant_tree, "x_archived_at", ADD_ARCHIVED_AT, DROP_ARCHIVED_AT)
    with migrations.script_location_override("tenant", tenant_tree):
        uow_factory = factory()
        results = list(
            service.migrate_tenants(plan=plan_for(uow_factory, fleet, head), uow_factory=uow_factory)
        )
        by_tenant = outcomes(results)
        assert by_tenant.pop(broken.id) is MigrationOutcome.FAILED
        assert set(by_tenant.values()) == {MigrationOutcome.MIGRATED}
        assert {r.method for r in results if r.tenant_id != broken.id} == {UpgradeMethod.SCRIPT}
        version, error = registry(runtime, broken)
        assert version == old_head and "DuplicateColumn" in error
        with owner_engine().connect() as connection:  # rolled back to where it was
            assert migrations.tenant_revision(connection, broken.schema_name) == old_head

        # A re-run picks up only the failed tenant; while the cause is there it fails again.
        plan = plan_for(uow_factory, fleet, head)
        assert [t.id for t in plan.pending] == [broken.id]
        [again] = service.migrate_tenants(plan=plan, uow_factory=uow_factory)
        assert again.outcome is MigrationOutcome.FAILED

        with owner_engine().begin() as connection:
            in_schema(connection, "ALTER TABLE {schema}.clients DROP archived_at", broken.schema_name)
        [fixed] = service.migrate_tenants(plan=plan_for(uow_factory, fleet, head), uow_factory=uow_factory)
        assert (fixed.outcome, fixed.method) == (MigrationOutcome.MIGRATED, UpgradeMethod.SCRIPT)
        assert registry(runtime, broken) == (head, None)
        assert plan_for(uow_factory, fleet, head).pending == []


SLOW_REVISION = """
op.execute("SELECT pg_sleep(0.15)")
op.create_table("migration_runs", sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now()))
op.execute("INSERT INTO migration_runs DEFAULT VALUES")
"""


def test_concurrent_runs_never_migrate_a_tenant_twice(make_tenant, runtime, tenant_tree, retire, factory):
    fleet = [make_tenant() for _ in range(6)]
    retire(fleet)
    head = add_revision(tenant_tree, "x_slow", SLOW_REVISION, 'op.drop_table("migration_runs")')
    with migrations.script_location_override("tenant", tenant_tree):
        uow_factory = factory()
        plan = plan_for(uow_factory, fleet, head)
        start = threading.Barrier(2)
        runs: list[list] = [[], []]

        def run(results: list) -> None:
            start.wait()
            results.extend(service.migrate_tenants(plan=plan, uow_factory=uow_factory, jobs=2))

        threads = [threading.Thread(target=run, args=(results,)) for results in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    first, second = outcomes(runs[0]), outcomes(runs[1])
    for tenant in fleet:
        pair = sorted([first[tenant.id], second[tenant.id]])
        assert pair.count(MigrationOutcome.MIGRATED) == 1, pair
        assert set(pair) - {MigrationOutcome.MIGRATED} <= {
            MigrationOutcome.BUSY,
            MigrationOutcome.CURRENT,
        }
        assert registry(runtime, tenant) == (head, None)
        with owner_engine().connect() as connection:
            query = "SELECT count(*) FROM {schema}.migration_runs"
            runs_in_schema = in_schema(connection, query, tenant.schema_name).scalar_one()
        assert runs_in_schema == 1


def test_a_tenant_whose_tables_stay_locked_fails_on_lock_timeout_and_is_retried(
    make_tenant, runtime, tenant_tree, retire, factory
):
    tenant = make_tenant()
    retire([tenant])
    head = add_revision(tenant_tree, "x_archived_at", ADD_ARCHIVED_AT, DROP_ARCHIVED_AT)
    with migrations.script_location_override("tenant", tenant_tree):
        uow_factory = factory()
        with runtime.engine.connect() as reader:  # a long request reading the table
            set_tenant_search_path(reader, tenant.schema_name)  # as the tenant's role
            reader.execute(text("SELECT count(*) FROM clients"))
            [result] = service.migrate_tenants(
                plan=plan_for(uow_factory, [tenant], head),
                uow_factory=uow_factory,
                lock_timeout_ms=100,
            )
            reader.rollback()
        assert result.outcome is MigrationOutcome.FAILED
        assert "LockNotAvailable" in registry(runtime, tenant)[1]
        [retried] = service.migrate_tenants(
            plan=plan_for(uow_factory, [tenant], head), uow_factory=uow_factory
        )
        assert retried.outcome is MigrationOutcome.MIGRATED


def test_nothing_pending_is_decided_from_the_registry_without_opening_schemas(make_tenant, runtime, factory):
    tenant = make_tenant()
    head = migrations.head_revision("tenant")
    uow_factory = factory()
    # Its schema is gone behind the registry's back: a run that opened schemas would fail.
    with owner_engine().begin() as connection:
        SqlSchemaManager(connection, None).drop(tenant.schema_name)
    try:
        plan = service.plan_migration(head=head, uow=uow_factory())
        assert tenant.id not in {t.id for t in plan.pending}
        assert plan.fleet_size >= 1
        assert plan_for(uow_factory, [tenant], head).pending == []
    finally:
        with owner_engine().begin() as connection:
            connection.execute(
                tenants_table.update()
                .where(tenants_table.c.id == tenant.id)
                .values(status="deleted", name="", slug=f"deleted-{tenant.id.hex}")
            )
