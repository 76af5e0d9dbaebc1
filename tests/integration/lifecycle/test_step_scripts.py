"""Fleet migrations by step script (infrastructure/step_scripts.py): every step of the tenant
tree, and a revision full of other kinds of objects, leave the catalog exactly as the chain
does; steps that read the database, or say they must, run by the chain; the per-tenant
guarantees of `tenants migrate` hold on the script path."""

from __future__ import annotations

import io
import logging
import uuid

import pytest
from alembic import command
from sqlalchemy import text

from backend.core.db import set_tenant_search_path
from backend.core.tenancy import InvalidSchemaName
from backend.domain.tenants import UpgradeMethod
from backend.infrastructure import migrations, step_scripts
from backend.infrastructure.sql.privileges import drop_tenant_role, grant_new_relations_sql, grant_tenant
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.service import tenants as service
from backend.service.tenants import MigrationOutcome
from tests.integration.lifecycle.catalog import snapshot
from tests.integration.lifecycle.conftest import add_revision, in_schema
from tests.integration.lifecycle.test_fast_provisioning import KITCHEN_SINK
from tests.integration.lifecycle.test_fleet_migrations import (
    ADD_ARCHIVED_AT,
    DROP_ARCHIVED_AT,
    plan_for,
    registry,
)
from tests.owner import owner_engine

ENUM_TABLE = """
op.create_table(
    "labels",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tone", sa.Enum("warm", "cold", name="tone"), nullable=False, server_default="warm"),
)
"""
READS_DATA = """
count = op.get_bind().execute(sa.text("SELECT count(*) FROM clients")).scalar_one()
op.execute(f"COMMENT ON TABLE clients IS 'clients when migrated: {count}'")
"""


def new_schema() -> str:
    return f"tenant_{uuid.uuid4().hex}"


def tree_steps() -> list[tuple[str | None, str]]:
    """Base -> each revision, and each revision -> head (the head itself included: a
    re-run after a failure recorded at head)."""
    revisions = [
        r.revision for r in migrations.upgrade_steps("tenant", None, migrations.head_revision("tenant"))
    ]
    head = revisions[-1]
    return sorted({(None, r) for r in revisions} | {(r, head) for r in revisions}, key=str)


def migrate_both(runtime, from_rev: str | None, to_rev: str) -> tuple[dict, dict]:
    """Two schemas at `from_rev` (by the chain, with the tenant grants); one goes on by the
    chain, the other by the step script, grants in the same round trip. Their catalogs."""
    chain, script = new_schema(), new_schema()
    role = runtime.runtime_role
    with owner_engine().connect() as connection:
        try:
            with connection.begin():
                for schema in (chain, script):
                    in_schema(connection, "CREATE SCHEMA {schema}", schema)
                    if from_rev is not None:
                        migrations.upgrade_tenant(connection, schema, from_rev)
                    grant_tenant(connection, schema, role)
            with connection.begin():
                assert migrations.upgrade_tenant(connection, chain, to_rev) == to_rev
                grant_tenant(connection, chain, role)
            with connection.begin():
                step = step_scripts.step_script(from_rev, to_rev)
                assert step is not None, (from_rev, to_rev)
                sql_text = step.for_schema(script) + grant_new_relations_sql(script, role)
                connection.exec_driver_sql(sql_text, execution_options={"no_parameters": True})
            with connection.begin():
                return snapshot(connection, chain), snapshot(connection, script)
        finally:
            with connection.begin():
                for schema in (chain, script):
                    SqlSchemaManager(connection, None).drop(schema)


@pytest.mark.parametrize(("from_rev", "to_rev"), tree_steps(), ids=lambda r: r or "base")
def test_every_step_of_the_tree_builds_what_the_chain_builds(runtime, from_rev, to_rev):
    by_chain, by_script = migrate_both(runtime, from_rev, to_rev)
    assert by_script == by_chain
    assert dict(by_chain["rows"])["alembic_version"] == [f'{{"version_num": "{to_rev}"}}']
    assert any("<schema>=arwd" in (row[6] or "") for row in by_chain["relations"])


def test_a_revision_with_other_kinds_of_objects_matches_the_chain(runtime, tenant_tree):
    """Add column + index, enums (by SQL and by SQLAlchemy's type events), identity and
    generated columns, exclusion constraints, functions, triggers, views, comments with `%`,
    seed rows and sequence state, on top of the repository's head."""
    old_head = migrations.head_revision("tenant")
    # Direct access for the runtime role, which the tenant grants take away again.
    runtime_grant = f"op.execute('GRANT SELECT ON probe_codes TO \"{runtime.runtime_role}\"')"
    add_revision(tenant_tree, "x_sink", ADD_ARCHIVED_AT + KITCHEN_SINK + ENUM_TABLE + runtime_grant, "pass")
    with migrations.script_location_override("tenant", tenant_tree):
        by_chain, by_script = migrate_both(runtime, old_head, "x_sink")
    assert by_script == by_chain
    assert {"probe", "labels", "ix_clients_archived_at"} <= {row[0] for row in by_chain["relations"]}
    assert {"mood", "tone"} <= {row[0] for row in by_chain["types"]}
    assert any(row[1] == "probe_touch" for row in by_chain["triggers"])
    probe_codes = next(row for row in by_chain["relations"] if row[0] == "probe_codes")
    assert runtime.runtime_role not in probe_codes[6] and "<schema>=arwd" in probe_codes[6]


def test_the_script_is_what_alembic_offline_mode_prints(tenant_tree):
    """`alembic -n tenant upgrade FROM:TO --sql` goes through the same env.py branch."""
    old_head = migrations.head_revision("tenant")
    add_revision(tenant_tree, "x_archived_at", ADD_ARCHIVED_AT, DROP_ARCHIVED_AT)
    with migrations.script_location_override("tenant", tenant_tree):
        buffer = io.StringIO()
        config = migrations.alembic_config("tenant")
        config.output_buffer = buffer
        command.upgrade(config, f"{old_head}:x_archived_at", sql=True)
        step = step_scripts.step_script(old_head, "x_archived_at")
    printed = buffer.getvalue()
    assert "ALTER TABLE clients ADD COLUMN archived_at TIMESTAMP WITH TIME ZONE" in printed
    assert "BEGIN;" not in printed and "COMMIT;" not in printed  # inside each tenant's transaction
    body = printed.replace(step_scripts.VERSION_SCHEMA_TOKEN, step_scripts.PLACEHOLDER).strip()
    assert body in step.sql


def test_scripts_apply_only_to_a_valid_schema_name():
    step = step_scripts.step_script(None, migrations.head_revision("tenant"))
    for name in ('tenant_x"; DROP SCHEMA shared CASCADE; --', "shared", "tenant_ABC"):
        with pytest.raises(InvalidSchemaName):
            step.for_schema(name)


def test_a_revision_that_reads_the_database_runs_by_the_chain(
    make_tenant, runtime, tenant_tree, retire, factory, caplog
):
    tenant = make_tenant()
    retire([tenant])
    add_revision(tenant_tree, "x_reads", READS_DATA, "op.execute('COMMENT ON TABLE clients IS NULL')")
    with migrations.script_location_override("tenant", tenant_tree), caplog.at_level(logging.INFO):
        assert step_scripts.step_script(tenant.schema_version, "x_reads") is None
        uow_factory = factory()
        [result] = service.migrate_tenants(
            plan=plan_for(uow_factory, [tenant], "x_reads"), uow_factory=uow_factory
        )
    assert (result.outcome, result.method) == (MigrationOutcome.MIGRATED, UpgradeMethod.CHAIN)
    assert "runs by the migration chain" in caplog.text and "executes TextClause" in caplog.text
    assert registry(runtime, tenant) == ("x_reads", None)
    with owner_engine().connect() as connection:
        comment = connection.execute(
            text("SELECT obj_description(to_regclass(:table), 'pg_class')"),
            {"table": f"{tenant.schema_name}.clients"},
        ).scalar_one()
    assert comment == "clients when migrated: 0"


def test_a_revision_marked_online_only_runs_by_the_chain(make_tenant, runtime, tenant_tree, retire, factory):
    tenant = make_tenant()
    retire([tenant])
    add_revision(tenant_tree, "x_online", ADD_ARCHIVED_AT, DROP_ARCHIVED_AT)
    path = tenant_tree / "versions" / "x_online.py"
    path.write_text(path.read_text() + "\nonline_only = True\n")
    with migrations.script_location_override("tenant", tenant_tree):
        assert step_scripts.step_script(tenant.schema_version, "x_online") is None
        uow_factory = factory()
        [result] = service.migrate_tenants(
            plan=plan_for(uow_factory, [tenant], "x_online"), uow_factory=uow_factory
        )
    assert (result.outcome, result.method) == (MigrationOutcome.MIGRATED, UpgradeMethod.CHAIN)
    assert registry(runtime, tenant) == ("x_online", None)


def test_script_and_chain_migrate_tenants_alike_through_the_schema_manager(
    make_tenant, runtime, tenant_tree, retire
):
    """The whole per-tenant path (lock timeout, savepoint, grants): one tenant by the script,
    one by the chain (no registry version), the same catalog."""
    by_script, by_chain = make_tenant(), make_tenant()
    retire([by_script, by_chain])
    old_head = by_script.schema_version
    add_revision(tenant_tree, "x_sink", ADD_ARCHIVED_AT + KITCHEN_SINK + ENUM_TABLE, "pass")
    with migrations.script_location_override("tenant", tenant_tree):
        with owner_engine().begin() as connection:
            manager = SqlSchemaManager(connection, runtime.runtime_role)
            script = manager.migrate(by_script.schema_name, from_version=old_head, lock_timeout_ms=1000)
            chain = manager.migrate(by_chain.schema_name, from_version=None, lock_timeout_ms=1000)
            assert script.method is UpgradeMethod.SCRIPT and chain.method is UpgradeMethod.CHAIN
            assert script.version == chain.version == "x_sink"
    with owner_engine().connect() as connection:  # the chain left its search path set
        assert snapshot(connection, by_script.schema_name) == snapshot(connection, by_chain.schema_name)


def test_a_schema_not_where_the_registry_says_is_migrated_by_the_chain(
    make_tenant, runtime, tenant_tree, retire, factory, caplog
):
    tenant = make_tenant()
    retire([tenant])
    actual = tenant.schema_version
    first = add_revision(tenant_tree, "x_first", 'op.execute("CREATE TABLE first_step (id int)")', "pass")
    add_revision(tenant_tree, "x_second", ADD_ARCHIVED_AT, DROP_ARCHIVED_AT)
    with migrations.script_location_override("tenant", tenant_tree):
        with owner_engine().begin() as connection:  # the registry is ahead of the schema
            connection.execute(
                text("UPDATE shared.tenants SET schema_version = :v WHERE id = :id"),
                {"v": first, "id": tenant.id},
            )
        uow_factory = factory()
        with caplog.at_level(logging.WARNING):
            [result] = service.migrate_tenants(
                plan=plan_for(uow_factory, [tenant], "x_second"), uow_factory=uow_factory
            )
        with owner_engine().connect() as connection:
            assert migrations.tenant_revision(connection, tenant.schema_name) == "x_second"
            first_table = in_schema(
                connection, "SELECT to_regclass('{schema}.first_step')", tenant.schema_name
            )
            assert first_table.scalar_one() is not None  # the chain ran from where the schema was
    assert (result.outcome, result.method) == (MigrationOutcome.MIGRATED, UpgradeMethod.CHAIN)
    assert f"found {actual}, expected {first}" in caplog.text
    assert registry(runtime, tenant) == ("x_second", None)


def test_tenant_roles_get_the_new_objects_and_only_their_own(
    make_tenant, runtime, tenant_tree, retire, factory
):
    ours, theirs = make_tenant(), make_tenant()
    retire([ours, theirs])
    add_revision(tenant_tree, "x_sink", ADD_ARCHIVED_AT + KITCHEN_SINK + ENUM_TABLE, "pass")
    with migrations.script_location_override("tenant", tenant_tree):
        uow_factory = factory()
        results = list(
            service.migrate_tenants(
                plan=plan_for(uow_factory, [ours, theirs], "x_sink"), uow_factory=uow_factory
            )
        )
    assert {(r.outcome, r.method) for r in results} == {(MigrationOutcome.MIGRATED, UpgradeMethod.SCRIPT)}
    with runtime.engine.connect() as connection:  # the API's role, in our tenant's scope
        set_tenant_search_path(connection, ours.schema_name)
        assert connection.execute(text("SELECT count(*) FROM probe")).scalar_one() == 1
        connection.execute(text("INSERT INTO labels (id) VALUES (1)"))
        assert connection.execute(text("SELECT count(archived_at) FROM clients")).scalar_one() == 0
        with pytest.raises(Exception, match="permission denied"):
            in_schema(connection, "SELECT count(*) FROM {schema}.probe", theirs.schema_name)
        connection.rollback()


def test_a_tenant_without_its_role_is_migrated_by_the_chain_which_makes_it(
    make_tenant, runtime, tenant_tree, retire, factory
):
    tenant = make_tenant()
    retire([tenant])
    with owner_engine().begin() as connection:  # as schemas made before tenant roles
        drop_tenant_role(connection, tenant.schema_name)
    add_revision(tenant_tree, "x_archived_at", ADD_ARCHIVED_AT, DROP_ARCHIVED_AT)
    with migrations.script_location_override("tenant", tenant_tree):
        uow_factory = factory()
        [result] = service.migrate_tenants(
            plan=plan_for(uow_factory, [tenant], "x_archived_at"), uow_factory=uow_factory
        )
    assert (result.outcome, result.method) == (MigrationOutcome.MIGRATED, UpgradeMethod.CHAIN)
    with runtime.engine.connect() as connection:  # the role exists again and may read
        set_tenant_search_path(connection, tenant.schema_name)
        assert connection.execute(text("SELECT count(archived_at) FROM clients")).scalar_one() == 0


def test_a_script_postgresql_cannot_parse_fails_its_tenants_whole_and_is_recorded(
    make_tenant, runtime, tenant_tree, retire, factory
):
    """Nothing of a script that does not parse runs; the savepoint set before it still
    lets each tenant's own transaction record the error under its lock."""
    fleet = [make_tenant(), make_tenant()]
    retire(fleet)
    old_head = fleet[0].schema_version
    add_revision(tenant_tree, "x_typo", ADD_ARCHIVED_AT + 'op.execute("CREATE TABLE oops (")', "pass")
    with migrations.script_location_override("tenant", tenant_tree):
        uow_factory = factory()
        results = list(
            service.migrate_tenants(plan=plan_for(uow_factory, fleet, "x_typo"), uow_factory=uow_factory)
        )
    assert {r.outcome for r in results} == {MigrationOutcome.FAILED}
    for tenant in fleet:
        version, error = registry(runtime, tenant)
        assert version == old_head and "SyntaxError" in error
        with owner_engine().connect() as connection:
            assert migrations.tenant_revision(connection, tenant.schema_name) == old_head
            columns = set(
                connection.execute(
                    text("SELECT column_name FROM information_schema.columns WHERE table_schema = :schema"),
                    {"schema": tenant.schema_name},
                ).scalars()
            )
            assert "email" in columns and "archived_at" not in columns
