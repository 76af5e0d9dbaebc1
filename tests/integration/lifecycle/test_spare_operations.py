"""Operating the pool of spare schemas: `tenants spares`, the refill at the end of
`tenants migrate`, `tenants provision` claiming a spare, commands killed halfway, and
everything that walks the tenants (list, fleet migration plan, metrics) leaving spares out."""

from __future__ import annotations

import json
import signal

import pytest
from sqlalchemy import select

from backend.api.metrics import FleetCollector
from backend.domain.tenants import schema_name_for
from backend.infrastructure import migrations
from backend.infrastructure.sql.tenants import tenants
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service.tenants import plan_migration
from tests.conftest import unique_slug
from tests.integration.faults.killing import kill_when_blocked, orphans, run_cli
from tests.integration.lifecycle.test_spare_schemas import catalog_facts, spare_ids
from tests.owner import owner_engine

KILLED = -signal.SIGKILL


@pytest.fixture()
def cli(app, runtime, monkeypatch):
    """The app's CLI with SPARE_SCHEMAS=2."""
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update=dict(spare_schemas=2)))
    runner = app.test_cli_runner()

    def invoke(*args: str):
        result = runner.invoke(args=["tenants", *args])
        assert result.exit_code == 0, result.output
        return result.output

    return invoke


def test_the_spares_command_shows_fills_shrinks_and_drops_stale_spares(runtime, spare_pool, cli):
    assert "0 ready (SPARE_SCHEMAS=2)" in cli("spares")
    out = cli("spares", "--fill")
    assert "2 ready (target 2); 2 built, 0 dropped" in out
    assert "3 ready (target 3); 1 built" in cli("spares", "--fill", "3")
    assert "1 ready (target 1); 0 built, 2 dropped" in cli("spares", "--fill", "1")
    (spare,) = spare_ids(runtime)
    assert catalog_facts(runtime, schema_name_for(spare))[:2] == (True, True)
    with owner_engine().begin() as connection:  # a spare of a revision this code does not know
        connection.exec_driver_sql("UPDATE shared.spare_schemas SET revision = 'x_future'")
    assert "0 ready (SPARE_SCHEMAS=2), 0 of an older head, 1 of a revision" in cli("spares")
    assert "0 dropped" in cli("spares", "--fill")  # left alone by a plain refill
    assert "2 ready (target 2); 0 built, 1 dropped" in cli("spares", "--drop-stale")
    assert catalog_facts(runtime, schema_name_for(spare))[:2] == (False, False)


def test_migrate_refills_the_pool_at_the_end_of_a_deploy_only(runtime, spare_pool, cli, make_tenant):
    tenant = make_tenant()
    assert "spare schemas" not in cli("migrate", "--slug", tenant.slug)
    assert spare_ids(runtime) == set()
    out = cli("migrate")
    assert out.index("tenants at") < out.index("spare schemas at")
    assert "2 ready (target 2); 2 built" in out
    assert "0 built, 0 dropped" in cli("migrate")


def test_migrate_still_succeeds_when_the_refill_fails(runtime, spare_pool, cli, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no pg_dump today")

    monkeypatch.setattr("backend.infrastructure.spares.SparePool.refill", broken)
    out = cli("migrate")
    assert "warning: spare schemas not refilled: RuntimeError: no pg_dump today" in out


def test_provision_command_claims_a_spare_and_list_never_shows_spares(runtime, spare_pool, cli):
    spare_pool.refill()
    spares = spare_ids(runtime)
    slug = unique_slug("cli")
    out = cli("provision", "--slug", slug, "--name", "From a spare", "--owner-email", f"{slug}@example.com")
    with owner_engine().connect() as connection:
        tenant_id = connection.execute(select(tenants.c.id).where(tenants.c.slug == slug)).scalar_one()
    assert tenant_id in spares and str(tenant_id) in out
    listed = {row["id"] for row in json.loads(cli("list", "--format", "json"))}
    assert str(tenant_id) in listed
    assert listed.isdisjoint(str(spare) for spare in spare_ids(runtime))


def test_fleet_walkers_and_metrics_leave_spares_out(runtime, spare_pool, make_tenant):
    make_tenant()
    head = migrations.head_revision("tenant")

    def fleet_size() -> int:
        return plan_migration(head=head, uow=SqlRegistryUnitOfWork(owner_engine())).fleet_size

    size, before = fleet_size(), FleetCollector(runtime.engine, ttl_s=0).counts()
    spare_pool.refill()
    with owner_engine().begin() as connection:
        connection.exec_driver_sql(
            "UPDATE shared.spare_schemas SET revision = 'x_old'"
            " WHERE id = (SELECT id FROM shared.spare_schemas LIMIT 1)"
        )
    after = FleetCollector(runtime.engine, ttl_s=0).counts()
    assert fleet_size() == size
    assert after.by_status == before.by_status and after.by_migration == before.by_migration
    assert (after.spares["ready"], after.spares["stale"]) == (1, 1)


def test_purge_and_retention_leave_spares_alone(runtime, spare_pool, cli):
    spare_pool.refill()
    spares = spare_ids(runtime)
    cli("purge")
    assert spare_ids(runtime) == spares
    for spare in spares:
        assert catalog_facts(runtime, schema_name_for(spare))[:2] == (True, True)


@pytest.mark.slow
def test_a_refill_killed_while_registering_its_spare_leaves_nothing(settings, runtime, spare_pool):
    before = orphans(owner_engine())
    # Schema, tables and tenant role are made; the spare's row is next.
    killed = kill_when_blocked(
        settings, owner_engine(), "shared.spare_schemas", "SHARE", "spares", "--fill", "1"
    )
    assert killed.returncode == KILLED and killed.created > 0
    assert spare_ids(runtime) == set() and orphans(owner_engine()) == before
    again = run_cli(settings, "spares", "--fill", "1")
    assert again.returncode == 0, again.stderr
    assert len(spare_ids(runtime)) == 1 and orphans(owner_engine()) == before


@pytest.mark.slow
def test_a_provisioning_killed_after_its_claim_leaves_the_spare_in_the_pool(
    settings, runtime, spare_pool, monkeypatch
):
    monkeypatch.setenv("SPARE_SCHEMAS", "2")
    spare_pool.refill(target=1)
    (spare,) = spare_ids(runtime)
    before = orphans(owner_engine())
    slug = unique_slug("killspare")
    args = ("provision", "--slug", slug, "--name", "Killed", "--owner-email", f"{slug}@example.com")
    # The spare is claimed and the registry row written; the owner's membership is next.
    killed = kill_when_blocked(settings, owner_engine(), "shared.memberships", "SHARE", *args)
    assert killed.returncode == KILLED
    assert spare_ids(runtime) == {spare} and orphans(owner_engine()) == before
    with owner_engine().connect() as connection:
        assert connection.execute(select(tenants.c.id).where(tenants.c.slug == slug)).first() is None
    again = run_cli(settings, *args)
    assert again.returncode == 0, again.stderr
    assert str(spare) in again.stdout and spare_ids(runtime) == set()
