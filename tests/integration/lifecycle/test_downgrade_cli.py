"""`tenants downgrade --slug S --to REV`: one tenant's schema goes down the tenant tree, the
registry's `schema_version` follows (so the next `tenants migrate` brings it back), the grants
are re-applied (its routes keep working), and the change is audited."""

from __future__ import annotations

from sqlalchemy import text

from backend.infrastructure import migrations
from tests.integration.lifecycle.conftest import add_revision
from tests.integration.lifecycle.test_fleet_migrations import (
    ADD_ARCHIVED_AT,
    DROP_ARCHIVED_AT,
    has_column,
    registry,
)
from tests.owner import owner_engine

API = "/api/v1"


def serves(client, headers) -> str:
    """The tenant's routes work for its worker: reads and writes (the runtime role's grants)."""
    # The access cache would hide a registry change for up to 2 s.
    client.application.extensions["saas"].access_cache.forget()
    created = client.post(f"{API}/clients", json={"name": "After"}, headers=headers)
    assert created.status_code == 201, created.json
    listed = client.get(f"{API}/clients", headers=headers)
    assert listed.status_code == 200, listed.json
    return created.json["id"]


def audit_events(runtime, tenant) -> list[tuple]:
    with owner_engine().connect() as connection:
        return [
            (row.event, row.metadata)
            for row in connection.execute(
                text("SELECT event, metadata FROM shared.audit_events WHERE tenant_id = :t ORDER BY id"),
                {"t": tenant.id},
            )
        ]


def test_downgrade_keeps_the_registry_true_and_migrate_brings_it_back(
    app, client, make_tenant, worker_token, runtime, tenant_tree, retire
):
    tenant, neighbour = make_tenant(), make_tenant()
    retire([tenant, neighbour])
    old = tenant.schema_version
    head = add_revision(tenant_tree, "x_archived_at", ADD_ARCHIVED_AT, DROP_ARCHIVED_AT)
    cli = app.test_cli_runner()
    with migrations.script_location_override("tenant", tenant_tree):
        for slug in (tenant.slug, neighbour.slug):
            up = cli.invoke(args=["tenants", "migrate", "--slug", slug])
            assert up.exit_code == 0, up.output
        assert registry(runtime, tenant) == (head, None)

        down = cli.invoke(args=["tenants", "downgrade", "--slug", tenant.slug, "--to", old])
        assert down.exit_code == 0, down.output
        assert f"downgraded {tenant.slug}" in down.output and f"from {head} to {old}" in down.output
        assert registry(runtime, tenant) == (old, None)
        with owner_engine().connect() as connection:
            assert migrations.tenant_revision(connection, tenant.schema_name) == old
        assert not has_column(runtime, tenant, "archived_at")
        assert has_column(runtime, neighbour, "archived_at"), "only that tenant went down"
        assert registry(runtime, neighbour) == (head, None)
        event, metadata = audit_events(runtime, tenant)[-1]
        assert event == "tenant.downgraded"
        assert metadata == {"slug": tenant.slug, "from_version": head, "schema_version": old}
        serves(client, worker_token(tenant))

        again = cli.invoke(args=["tenants", "migrate", "--slug", tenant.slug])
        assert again.exit_code == 0, again.output
        assert "1 of " in again.output and "1 migrated" in again.output
        assert registry(runtime, tenant) == (head, None)
        assert has_column(runtime, tenant, "archived_at")
        mine = serves(client, worker_token(tenant))
        # isolation holds after the round trip: the neighbour neither sees nor reaches it
        theirs = client.get(f"{API}/clients", headers=worker_token(neighbour)).json
        assert mine not in {c["id"] for c in theirs}
        assert client.get(f"{API}/clients/{mine}", headers=worker_token(neighbour)).status_code == 404


def test_a_target_not_below_the_schema_is_refused_in_one_line(app, make_tenant, runtime):
    tenant = make_tenant()
    cli = app.test_cli_runner()
    for target in (tenant.schema_version, "head", "base", "no_such_rev", "t00"):
        result = cli.invoke(args=["tenants", "downgrade", "--slug", tenant.slug, "--to", target])
        assert result.exit_code == 1, (target, result.output)
        (line,) = result.output.strip().splitlines()
        assert "validation_error" in line and "not a revision below" in line, line
    assert registry(runtime, tenant) == (tenant.schema_version, None)
    unknown = cli.invoke(args=["tenants", "downgrade", "--slug", "no-such-tenant", "--to", "t0001"])
    assert unknown.exit_code == 1 and "not_found" in unknown.output
