"""The API's one door into the owner's powers: `shared.claim_spare_schema` (shared revision
0008). The runtime role may execute it and no other SECURITY DEFINER function; it cannot do
what the function does by itself; tenant transactions cannot call it; its search path is fixed
and its argument validated; two claims at once never take the same spare."""

from __future__ import annotations

import threading

import psycopg.errors
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from backend.core.db import tenant_scope
from backend.domain.tenants import schema_name_for
from backend.infrastructure import migrations
from backend.infrastructure.spares import SparePool
from backend.infrastructure.sql.schemas import SqlSchemaManager
from tests.integration.defense.sqlcheck import column, refused, scalar
from tests.owner import owner_engine

CLAIM = "shared.claim_spare_schema(text)"


@pytest.fixture()
def tenant(module_tenants):
    return module_tenants("claimfn")


@pytest.fixture()
def pool(runtime, runtime_role):
    pool = SparePool(owner_engine(), runtime_role, 0)
    pool.refill(target=0, shrink=True, drop_stale=True)
    yield pool
    pool.refill(target=0, shrink=True, drop_stale=True)


def claim(connection, revision) -> list:
    return connection.execute(
        text("SELECT id, revision FROM shared.claim_spare_schema(:revision)"), {"revision": revision}
    ).all()


def test_the_claim_is_the_only_security_definer_function_the_runtime_may_execute(runtime, runtime_role):
    with runtime.engine.connect() as connection:
        elevated = column(
            connection,
            "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p"
            " WHERE p.prosecdef AND has_function_privilege(current_user, p.oid, 'EXECUTE')"
            " ORDER BY 1",
        )
    assert elevated == [CLAIM]


def test_the_claim_function_is_the_owners_with_a_fixed_search_path_and_no_public_execute(
    runtime, runtime_role, owner_role
):
    with owner_engine().connect() as connection:
        row = connection.execute(
            text(
                "SELECT pg_get_userbyid(p.proowner) AS owner, p.prosecdef, p.proconfig,"
                " (SELECT array_agg(coalesce(nullif(a.grantee, 0)::regrole::text, 'PUBLIC')"
                "   ORDER BY 1) FROM aclexplode(p.proacl) a WHERE a.privilege_type = 'EXECUTE')"
                "   AS executors"
                f" FROM pg_catalog.pg_proc p WHERE p.oid = '{CLAIM}'::regprocedure"
            )
        ).one()
    assert row.owner == owner_role and row.prosecdef is True
    assert row.proconfig == ["search_path=pg_catalog, pg_temp"]
    # The owner keeps its own right; the runtime role has it; PUBLIC, tenant roles and the
    # tenant group do not.
    assert sorted(row.executors) == sorted([owner_role, runtime_role])


def test_the_runtime_role_cannot_do_the_claim_by_itself(runtime, runtime_role, pool):
    pool.refill(target=1)
    with runtime.engine.connect() as connection:
        refused(connection, "DELETE FROM shared.spare_schemas")
        refused(connection, "UPDATE shared.spare_schemas SET revision = 'x'")
        refused(connection, "INSERT INTO shared.spare_schemas (id, schema_name, revision) SELECT id,"
                            " schema_name, revision FROM shared.spare_schemas")  # fmt: skip
        refused(connection, "SELECT id FROM shared.spare_schemas FOR UPDATE")
        connection.rollback()


def test_a_tenant_transaction_cannot_call_the_claim(runtime, runtime_role, tenant, pool):
    pool.refill(target=1)
    with tenant_scope(runtime.engine, tenant.schema_name) as connection:
        assert scalar(connection, "SELECT current_user") == tenant.schema_name
        head = migrations.head_revision("tenant")
        refused(connection, "SELECT * FROM shared.claim_spare_schema(:r)", r=head)
        connection.rollback()
    assert pool.status().at_head == 1


@pytest.mark.parametrize("revision", [None, "", "x" * 65, "0001'; DROP TABLE shared.users; --", "a b", "é"])
def test_the_claim_refuses_what_is_not_a_revision_id(runtime, runtime_role, revision):
    with runtime.engine.connect() as connection:
        with pytest.raises(DBAPIError) as refused_claim:
            claim(connection, revision)
        connection.rollback()
    assert isinstance(refused_claim.value.orig, psycopg.errors.InvalidParameterValue)
    assert "not a revision id" in str(refused_claim.value.orig)


def test_the_claim_takes_the_oldest_spare_at_that_revision_and_a_rollback_returns_it(
    runtime, runtime_role, pool
):
    pool.refill(target=2)
    head = migrations.head_revision("tenant")
    with owner_engine().connect() as connection:
        oldest = connection.execute(
            text("SELECT id FROM shared.spare_schemas ORDER BY created_at, id LIMIT 1")
        ).scalar_one()
    with runtime.engine.connect() as connection:
        assert claim(connection, "0000_not_a_known_revision") == []
        ((taken, revision),) = claim(connection, head)
        assert (taken, revision) == (oldest, head)
        connection.rollback()
    assert pool.status().at_head == 2


def test_two_claims_at_once_never_take_the_same_spare(runtime, runtime_role, pool):
    """Each transaction holds its claim open while the others claim: SKIP LOCKED gives each a
    different spare, and the one too many gets none instead of waiting."""
    pool.refill(target=2)
    head = migrations.head_revision("tenant")
    barrier = threading.Barrier(3, timeout=30)
    taken: list = [None] * 3

    def run(index: int) -> None:
        with runtime.engine.connect() as connection:
            barrier.wait()
            rows = claim(connection, head)
            taken[index] = rows[0].id if rows else None
            barrier.wait()  # every claim is made while the others are still open
            connection.commit()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [spare for spare in taken if spare is not None]
    assert len(claimed) == 2 and len(set(claimed)) == 2 and taken.count(None) == 1
    assert pool.status().at_head == 0
    # Claimed and committed without a tenant: as a crashed signup cannot leave (its
    # transaction would roll back), but this test did; drop the two schemas it orphaned.
    with owner_engine().begin() as connection:
        for spare in claimed:
            SqlSchemaManager(connection, runtime_role).drop(schema_name_for(spare))
