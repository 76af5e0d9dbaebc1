"""The pool of spare schemas under concurrency and failures: two provisionings never claim
one spare, two refills never overshoot nor deadlock, and a failure at any step leaves a
complete spare, a tenant, or nothing."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import func, select, text

from backend.domain.tenants import schema_name_for
from backend.infrastructure.spares import POOL_LOCK
from backend.infrastructure.sql.identity import SqlMembershipRepository, users
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.infrastructure.sql.spares import SqlSpareRegistry
from backend.infrastructure.sql.tenants import tenants
from tests.conftest import unique_slug
from tests.integration.faults.killing import orphans
from tests.integration.lifecycle.test_fast_provisioning import InjectedFailure, fail_after
from tests.integration.lifecycle.test_spare_schemas import catalog_facts, provision, spare_ids
from tests.owner import owner_engine

BARRIER_TIMEOUT_S = 30


def run_together(count: int, work) -> list:
    """`work(index)` in `count` threads at once; their results, or raise the first error."""
    results: list = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = work(index)
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("spares", [1, 2])
def test_two_provisionings_at_once_never_claim_the_same_spare(runtime, spare_pool, monkeypatch, spares):
    spare_pool.refill(target=spares)
    pool = spare_ids(runtime)
    both_claimed = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)
    original = SqlSchemaManager.claim_spare

    def claim_then_wait(self):
        # Both transactions hold their claim (or have found none) before either commits: a
        # second claim that waited for the first one's row lock would break the barrier.
        spare = original(self)
        both_claimed.wait()
        return spare

    monkeypatch.setattr(SqlSchemaManager, "claim_spare", claim_then_wait)
    made = run_together(2, lambda _: provision(runtime))
    ids = {tenant.id for tenant in made}
    assert len(ids) == 2
    assert len(ids & pool) == spares  # one spare each, or one spare and one new schema
    assert spare_ids(runtime) == set()
    for tenant in made:
        assert catalog_facts(runtime, tenant.schema_name)[:2] == (True, True)


def test_two_refills_at_once_reach_the_target_without_overshooting(runtime, spare_pool):
    start = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)

    def refill(_):
        start.wait()
        return spare_pool.refill(target=3)

    results = run_together(2, refill)
    assert sum(r.built for r in results) == 3
    assert spare_pool.status().at_head == 3 and len(spare_ids(runtime)) == 3


def test_a_refill_that_must_not_wait_leaves_the_work_to_the_one_running(runtime, spare_pool):
    with owner_engine().connect() as holder:
        holder.execute(select(func.pg_advisory_xact_lock(POOL_LOCK)))  # "another refill"
        result = spare_pool.refill(wait=False)
        holder.rollback()
    assert (result.busy, result.built) == (True, 0)
    assert spare_pool.refill(wait=False).built == 2


@pytest.mark.parametrize(
    ("cls", "step"),
    [(SqlSchemaManager, "create"), (SqlSpareRegistry, "add")],
    ids=["after-the-schema", "after-the-row"],
)
def test_a_refill_failing_midway_leaves_complete_spares_or_nothing(
    runtime, spare_pool, monkeypatch, cls, step
):
    spare_pool.refill(target=1)
    before = orphans(owner_engine())
    with monkeypatch.context() as patch:
        fail_after(patch, cls, step)
        with pytest.raises(InjectedFailure):
            spare_pool.refill(target=2)
    assert orphans(owner_engine()) == before
    (spare,) = spare_ids(runtime)
    assert catalog_facts(runtime, schema_name_for(spare))[:2] == (True, True)
    assert spare_pool.refill(target=2).built == 1


def test_a_drop_failing_midway_leaves_the_spare_complete(runtime, spare_pool, monkeypatch):
    spare_pool.refill()
    spares = spare_ids(runtime)
    with monkeypatch.context() as patch:
        fail_after(patch, SqlSchemaManager, "drop")
        with pytest.raises(InjectedFailure):
            spare_pool.refill(target=0, shrink=True)
    assert spare_ids(runtime) == spares
    for spare in spares:
        assert catalog_facts(runtime, schema_name_for(spare))[:2] == (True, True)


@pytest.mark.parametrize(
    ("cls", "step"),
    [(SqlSchemaManager, "claim_spare"), (SqlMembershipRepository, "add")],
    ids=["after-the-claim", "after-the-membership"],
)
def test_a_provisioning_failing_after_the_claim_puts_the_spare_back(
    runtime, spare_pool, monkeypatch, cls, step
):
    spare_pool.refill()
    spares = spare_ids(runtime)
    before = orphans(owner_engine())
    slug, email = unique_slug("spare"), f"owner-{uuid.uuid4().hex[:10]}@example.com"
    with monkeypatch.context() as patch:
        fail_after(patch, cls, step)
        with pytest.raises(InjectedFailure):
            provision(runtime, slug, email=email)
    assert spare_ids(runtime) == spares
    assert orphans(owner_engine()) == before
    with owner_engine().connect() as connection:
        assert connection.execute(select(func.count()).where(tenants.c.slug == slug)).scalar_one() == 0
        assert connection.execute(select(func.count()).where(users.c.email == email)).scalar_one() == 0
    tenant = provision(runtime, slug, email=email)
    assert tenant.id in spares and spare_ids(runtime) == spares - {tenant.id}


def test_the_runtime_role_reads_the_pool_and_tenant_transactions_cannot(runtime, spare_pool, make_tenant):
    from backend.infrastructure.sql.unit_of_work import SqlTenantUnitOfWork
    from tests.integration.defense.sqlcheck import refused

    spare_pool.refill(target=1)
    with runtime.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM shared.spare_schemas")).scalar_one() == 1
        refused(connection, "DELETE FROM shared.spare_schemas")
    with SqlTenantUnitOfWork(runtime.engine, make_tenant().schema_name) as uow:
        refused(uow.connection, "SELECT count(*) FROM shared.spare_schemas")
