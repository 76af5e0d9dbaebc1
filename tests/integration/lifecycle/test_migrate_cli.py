"""`tenants migrate`: shared schema first, a per-tenant summary, a non-zero exit when a
tenant failed, and a clean exit once the cause is gone."""

from __future__ import annotations

from backend.infrastructure import migrations
from tests.integration.lifecycle.conftest import add_revision, in_schema
from tests.integration.lifecycle.test_fleet_migrations import ADD_ARCHIVED_AT, DROP_ARCHIVED_AT
from tests.owner import owner_engine


def test_nothing_pending_exits_cleanly_without_touching_a_tenant(app, make_tenant):
    # Scoped to its own tenant: other test files sharing this database (pytest -n, loadfile)
    # may have left tenants of theirs at other revisions.
    tenant = make_tenant()
    result = app.test_cli_runner().invoke(args=["tenants", "migrate", "--slug", tenant.slug, "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "shared schema at" in result.output
    assert "0 of " in result.output
    assert "0 migrated" in result.output and "0 failed" in result.output


def test_a_failed_tenant_exits_non_zero_and_the_rerun_succeeds(
    app, make_tenant, runtime, tenant_tree, retire
):
    tenant = make_tenant()
    retire([tenant])
    with owner_engine().begin() as connection:
        in_schema(connection, "ALTER TABLE {schema}.clients ADD archived_at date", tenant.schema_name)
    add_revision(tenant_tree, "x_archived_at", ADD_ARCHIVED_AT, DROP_ARCHIVED_AT)
    cli = app.test_cli_runner()
    with migrations.script_location_override("tenant", tenant_tree):
        failed = cli.invoke(args=["tenants", "migrate", "--slug", tenant.slug, "--jobs", "2"])
        with owner_engine().begin() as connection:
            in_schema(connection, "ALTER TABLE {schema}.clients DROP archived_at", tenant.schema_name)
        fixed = cli.invoke(args=["tenants", "migrate", "--slug", tenant.slug])
    assert failed.exit_code == 1, failed.output
    summary_line = next(line for line in failed.output.splitlines() if line.startswith(tenant.slug))
    assert "failed" in summary_line and "DuplicateColumn" in summary_line
    assert "1 tenant(s) failed to migrate" in failed.output
    assert fixed.exit_code == 0, fixed.output
    assert "1 migrated (1 by step script, 0 by the migration chain)" in fixed.output
    assert "0 failed" in fixed.output


def test_an_unknown_slug_exits_non_zero(app):
    result = app.test_cli_runner().invoke(args=["tenants", "migrate", "--slug", "no-such-tenant"])
    assert result.exit_code == 1
    assert "not_found" in result.output


def test_there_is_no_verbose_flag_that_does_nothing(app):
    # --verbose used to be accepted and change nothing (Alembic's logger is set by LOG_LEVEL,
    # and step scripts and worker processes never log through it): LOG_LEVEL=DEBUG is the way.
    result = app.test_cli_runner().invoke(args=["tenants", "migrate", "--verbose"])
    assert result.exit_code == 2
    assert "No such option" in result.output and "--verbose" in result.output


def test_placement_on_a_single_server_says_there_is_no_cluster(app):
    result = app.test_cli_runner().invoke(args=["tenants", "placement"])
    assert result.exit_code == 1
    assert "not a Citus coordinator" in result.output
