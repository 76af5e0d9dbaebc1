"""Spare schemas: complete tenant schemas built ahead of time and claimed by the provisioning
transaction. A tenant made from a spare is the tenant the migration chain makes, isolated
like any other; a spare of an older head is never claimed, and the refill replaces it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from backend.domain.tenants import schema_name_for
from backend.infrastructure import migrations
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.infrastructure.sql.spares import spare_schemas
from backend.infrastructure.sql.tenants import tenants
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service.tenants import provision_tenant
from tests.conftest import unique_slug, verify_owner
from tests.integration.lifecycle.catalog import snapshot
from tests.integration.lifecycle.conftest import add_revision
from tests.owner import owner_engine

API = "/api/v1"


def provision(runtime, slug: str | None = None, *, spares: bool = True, email: str | None = None):
    slug = slug or unique_slug("spare")
    return provision_tenant(
        slug=slug,
        name=f"Workspace {slug}",
        owner_email=email or f"owner-{slug}@example.com",
        trial_days=14,
        now=datetime.now(UTC),
        uow=SqlRegistryUnitOfWork(owner_engine(), runtime.runtime_role, spares=spares),
    )


def spare_ids(runtime) -> set[uuid.UUID]:
    with owner_engine().connect() as connection:
        return set(connection.execute(select(spare_schemas.c.id)).scalars())


def catalog_facts(runtime, schema: str) -> tuple[bool, bool, list[str]]:
    """(schema exists, its tenant role exists, roles with a privilege on the schema)."""
    with owner_engine().connect() as connection:
        exists = connection.execute(
            text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"), {"s": schema}
        ).scalar_one()
        role = connection.execute(
            text("SELECT count(*) FROM pg_roles WHERE rolname = :s"), {"s": schema}
        ).scalar_one()
        grantees = connection.execute(
            text(
                "SELECT DISTINCT a.grantee::regrole::text FROM pg_namespace n, aclexplode(n.nspacl) a"
                " WHERE n.nspname = :s ORDER BY 1"
            ),
            {"s": schema},
        ).scalars()
        return bool(exists), bool(role), list(grantees)


def test_a_spare_is_a_complete_schema_with_its_role_and_a_tenant_takes_its_id(runtime, spare_pool):
    result = spare_pool.refill()
    assert (result.built, result.dropped, result.busy) == (2, 0, False)
    status = spare_pool.status()
    assert (status.at_head, status.older, status.other) == (2, 0, 0)
    spares = spare_ids(runtime)
    for spare in spares:
        exists, role, grantees = catalog_facts(runtime, schema_name_for(spare))
        assert exists and role and schema_name_for(spare) in grantees
        with owner_engine().connect() as connection:
            assert migrations.tenant_revision(connection, schema_name_for(spare)) == status.head

    tenant = provision(runtime)
    assert tenant.id in spares and tenant.schema_name == schema_name_for(tenant.id)
    assert tenant.schema_version == migrations.head_revision("tenant")
    assert spare_ids(runtime) == spares - {tenant.id}
    with owner_engine().connect() as connection:
        row = connection.execute(select(tenants).where(tenants.c.id == tenant.id)).one()
    assert (row.status, row.schema_name, row.schema_version) == ("active", tenant.schema_name, status.head)


def test_a_tenant_from_a_spare_has_the_catalog_the_chain_makes(runtime, spare_pool):
    spare_pool.refill(target=1)
    tenant = provision(runtime)
    chain = f"tenant_{uuid.uuid4().hex}"
    with owner_engine().connect() as connection:
        with connection.begin():
            manager = SqlSchemaManager(connection, runtime.runtime_role, fast_provisioning=False)
            assert manager.create(chain) == tenant.schema_version
        try:
            with connection.begin():
                by_chain, by_spare = snapshot(connection, chain), snapshot(connection, tenant.schema_name)
        finally:
            with connection.begin():
                SqlSchemaManager(connection, runtime.runtime_role).drop(chain)
    assert tenant.id not in spare_ids(runtime)
    assert by_spare == by_chain
    relations = {row[0] for row in by_chain["relations"]}
    assert {"alembic_version", "clients", "appointments", "media"} <= relations
    assert any("<schema>=arwd" in (row[6] or "") for row in by_chain["relations"])


def test_a_tenant_from_a_spare_is_isolated_like_any_other(runtime, spare_pool, client, worker_token):
    spare_pool.refill()
    from_spare, other_spare = provision(runtime), provision(runtime)
    spare_pool.refill(target=0, shrink=True)
    made_here = provision(runtime)  # empty pool: created in the provisioning transaction
    assert {from_spare.id, other_spare.id}.isdisjoint(spare_ids(runtime))
    assert made_here.id not in {from_spare.id, other_spare.id}
    for tenant in (from_spare, other_spare, made_here):
        verify_owner(runtime, tenant)
    headers = {t.id: worker_token(t) for t in (from_spare, other_spare, made_here)}
    created = {}
    for tenant in (from_spare, other_spare, made_here):
        body = {"name": f"Of {tenant.slug}"}
        response = client.post(f"{API}/clients", json=body, headers=headers[tenant.id])
        assert response.status_code == 201, response.json
        created[tenant.id] = response.json["id"]
    for tenant in (from_spare, other_spare, made_here):
        listed = client.get(f"{API}/clients", headers=headers[tenant.id]).json
        assert [item["id"] for item in listed] == [created[tenant.id]]
        for other in (from_spare, other_spare, made_here):
            if other.id == tenant.id:
                continue
            path = f"{API}/clients/{created[other.id]}"
            assert client.get(path, headers=headers[tenant.id]).status_code == 404
            assert client.delete(path, headers=headers[tenant.id]).status_code == 404
    own = client.get(f"{API}/clients/{created[from_spare.id]}", headers=headers[from_spare.id])
    assert own.status_code == 200


def test_without_the_pool_or_without_a_spare_provisioning_creates_the_schema(runtime, spare_pool):
    spare_pool.refill(target=1)
    spares = spare_ids(runtime)
    pool_off = provision(runtime, spares=False)
    assert pool_off.id not in spares and spare_ids(runtime) == spares
    claimed = provision(runtime)
    assert claimed.id in spares and spare_ids(runtime) == set()
    empty = provision(runtime)
    assert empty.id not in spares
    for tenant in (pool_off, claimed, empty):
        assert tenant.schema_version == migrations.head_revision("tenant")
        assert catalog_facts(runtime, tenant.schema_name)[:2] == (True, True)


def test_spares_of_an_older_head_are_never_claimed_and_the_refill_replaces_them(
    runtime, spare_pool, tenant_tree, retire
):
    spare_pool.refill()
    old_head, old_spares = migrations.head_revision("tenant"), spare_ids(runtime)
    column = 'op.add_column("clients", sa.Column("x", sa.Text()))'
    new_head = add_revision(tenant_tree, "x_spare_column", column)
    with migrations.script_location_override("tenant", tenant_tree):
        status = spare_pool.status()
        assert (status.head, status.at_head, status.older, status.other) == (new_head, 0, 2, 0)
        tenant = provision(runtime)
        retire([tenant])
        assert tenant.id not in old_spares and tenant.schema_version == new_head
        assert spare_ids(runtime) == old_spares

        result = spare_pool.refill()
        assert (result.built, result.dropped) == (2, 2)
        for spare in old_spares:
            assert catalog_facts(runtime, schema_name_for(spare))[:2] == (False, False)
        assert spare_ids(runtime).isdisjoint(old_spares)
        assert spare_pool.status().at_head == 2

    # Back on the repository's tree, the newer head's spares are of a revision this code does
    # not know (a rolling deploy's old process): a refill builds its own and leaves them.
    status = spare_pool.status()
    assert (status.head, status.at_head, status.older, status.other) == (old_head, 0, 0, 2)
    assert spare_pool.refill().dropped == 0
    assert spare_pool.status().other == 2
    result = spare_pool.refill(drop_stale=True)
    assert result.dropped == 2 and spare_pool.status().total == 2


def test_the_pool_shrinks_only_when_asked(runtime, spare_pool):
    spare_pool.refill(target=3)
    assert spare_pool.refill(target=1).dropped == 0  # a web process's refill never shrinks
    assert spare_pool.status().at_head == 3
    result = spare_pool.refill(target=1, shrink=True)
    assert (result.built, result.dropped) == (0, 2)
    (left,) = spare_ids(runtime)
    assert catalog_facts(runtime, schema_name_for(left))[:2] == (True, True)
    with owner_engine().connect() as connection:
        schemas = connection.execute(
            text("SELECT count(*) FROM pg_namespace WHERE nspname ~ '^tenant_' AND nspname = ANY(:n)"),
            {"n": [schema_name_for(s) for s in spare_ids(runtime)]},
        ).scalar_one()
        rows = connection.execute(select(func.count()).select_from(spare_schemas)).scalar_one()
    assert schemas == rows == 1


def test_downgrading_the_shared_tree_drops_the_spares_with_their_table(runtime):
    """Without its row nothing would know a spare: 0005's downgrade drops schema and role
    too. Inside one transaction, rolled back (DDL and roles are transactional)."""
    from alembic import command

    from backend.infrastructure.sql.spares import SqlSpareRegistry

    spare = uuid.uuid4()
    with owner_engine().connect() as connection:
        transaction = connection.begin()
        try:
            revision = SqlSchemaManager(connection, runtime.runtime_role).create(schema_name_for(spare))
            SqlSpareRegistry(connection).add(spare, revision)
            facts = (
                "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = :s),"
                " (SELECT count(*) FROM pg_roles WHERE rolname = :s),"
                " to_regclass('shared.spare_schemas') IS NOT NULL"
            )
            params = {"s": schema_name_for(spare)}
            assert tuple(connection.execute(text(facts), params).one()) == (1, 1, True)
            command.downgrade(migrations.alembic_config("shared", connection), "0004_access_notifications")
            assert tuple(connection.execute(text(facts), params).one()) == (0, 0, False)
            migrations.upgrade_shared(connection)
            assert migrations.shared_revision(connection) == migrations.head_revision("shared")
        finally:
            transaction.rollback()
