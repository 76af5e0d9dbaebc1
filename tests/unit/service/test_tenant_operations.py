"""Operator commands on tenants, on in-memory units of work (tests/unit/fakes.py): the trial
extension, status changes refused by the lifecycle, the fleet's migration plan and run (each
tenant migrated, busy, current, skipped or failed, failures recorded and the run going on).
Locks between concurrent runs, Alembic and the catalog are tested in tests/integration."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from backend.domain.errors import Conflict, Invalid, NotFound
from backend.domain.tenants import DisableReason, TenantStatus, UpgradeMethod
from backend.service import tenants
from backend.service.tenants import MigrationOutcome, MigrationPlan
from tests.unit.fakes import FakeRegistryUnitOfWork
from tests.unit.service.helpers import NOW, events, workspace


@pytest.fixture()
def uow():
    return FakeRegistryUnitOfWork()


def extend(uow, days=10, slug="acme", now=NOW):
    return tenants.extend_trial(slug=slug, days=days, now=now, uow=uow, actor_user_id=None)


def test_a_running_trial_is_extended_from_its_end_and_audited(uow):
    tenant = workspace(uow)
    extended = extend(uow, days=10)
    assert extended.trial_ends_at == tenant.trial_ends_at + timedelta(days=10)
    assert uow.tenants.get(tenant.id).trial_ends_at == extended.trial_ends_at
    [fields] = events(uow, "tenant.trial_extended")
    assert fields["metadata"] == {"slug": "acme", "days": 10} and fields["actor_role"] == "operator"


def test_an_ended_trial_is_extended_from_now(uow):
    tenant = workspace(uow)
    later = tenant.trial_ends_at + timedelta(days=30)
    assert extend(uow, days=7, now=later).trial_ends_at == later + timedelta(days=7)


@pytest.mark.parametrize("days", [0, -1, 366])
def test_an_extension_out_of_range_is_refused_before_anything(uow, days):
    workspace(uow)
    with pytest.raises(Invalid) as refused:
        extend(uow, days=days)
    assert "days" in refused.value.errors and events(uow, "tenant.trial_extended") == []


@pytest.mark.parametrize("status", [TenantStatus.DELETION_SCHEDULED, TenantStatus.DELETED])
def test_a_workspace_being_deleted_keeps_its_trial(uow, status):
    tenant = workspace(uow)
    uow.tenants.rows[tenant.id] = replace(tenant, status=status)
    with pytest.raises(Conflict) as refused:
        extend(uow)
    assert refused.value.code == "tenant_deleted"
    assert uow.tenants.get(tenant.id).trial_ends_at == tenant.trial_ends_at
    with pytest.raises(NotFound):
        extend(uow, slug="ghost")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (TenantStatus.DELETION_SCHEDULED, "tenant_deleted"),
        (TenantStatus.DELETED, "tenant_deleted"),
        (TenantStatus.PROVISIONING, "tenant_provisioning"),
    ],
)
def test_a_tenant_outside_active_and_disabled_is_neither_disabled_nor_enabled(uow, status, code):
    tenant = workspace(uow)
    uow.tenants.rows[tenant.id] = replace(tenant, status=status)
    with pytest.raises(Conflict) as disabling:
        tenants.disable_tenant(slug="acme", reason=DisableReason.ABUSE, now=NOW, uow=uow)
    with pytest.raises(Conflict) as enabling:
        tenants.enable_tenant(slug="acme", uow=uow)
    assert disabling.value.code == enabling.value.code == code
    assert uow.tenants.get(tenant.id).status is status
    assert events(uow, "tenant.disabled") == events(uow, "tenant.enabled") == []


def test_disable_and_enable_record_the_reason_and_the_time(uow):
    tenant = workspace(uow)
    disabled = tenants.disable_tenant(slug="acme", reason=DisableReason.ABUSE, now=NOW, uow=uow)
    assert disabled.status is TenantStatus.DISABLED and uow.tenants.get(tenant.id).disabled_at == NOW
    assert events(uow, "tenant.disabled")[0]["metadata"] == {"slug": "acme", "reason": "abuse"}
    tenants.enable_tenant(slug="acme", uow=uow)
    assert uow.tenants.get(tenant.id).disabled_at is None and len(events(uow, "tenant.enabled")) == 1


def test_tenants_are_listed_oldest_first_and_by_status(uow):
    first = workspace(uow, "acme")
    workspace(uow, "beta")
    uow.tenants.rows[first.id] = replace(first, created_at=NOW + timedelta(days=1))
    tenants.disable_tenant(slug="beta", reason=DisableReason.ABUSE, now=NOW, uow=uow)
    assert [t.slug for t in tenants.list_tenants(status=None, uow=uow)] == ["beta", "acme"]
    assert [t.slug for t in tenants.list_tenants(status=TenantStatus.DISABLED, uow=uow)] == ["beta"]


def behind(uow, slug, version="r_first", error=None, status=TenantStatus.ACTIVE):
    tenant = workspace(uow, slug)
    uow.tenants.rows[tenant.id] = replace(
        tenant, schema_version=version, last_migration_error=error, status=status
    )
    uow.schemas.schemas[tenant.schema_name] = version
    return uow.tenants.get(tenant.id)


def test_the_plan_lists_the_tenants_behind_head_or_that_failed_from_the_registry_alone(uow):
    workspace(uow, "current")
    old = behind(uow, "old")
    failed = behind(uow, "failed", version="r_head", error="LockNotAvailable: lock timeout")
    behind(uow, "gone", status=TenantStatus.DELETED)
    behind(uow, "fresh", status=TenantStatus.PROVISIONING)
    plan = tenants.plan_migration(head="r_head", uow=uow)
    assert plan.fleet_size == 3 and {t.id for t in plan.pending} == {old.id, failed.id}
    assert tenants.plan_migration(head="r_head", uow=uow, slug="current").pending == []
    assert [t.id for t in tenants.plan_migration(head="r_head", uow=uow, slug="old").pending] == [old.id]
    with pytest.raises(NotFound):
        tenants.plan_migration(head="r_head", uow=uow, slug="ghost")
    for slug, code in (("gone", "tenant_deleted"), ("fresh", "tenant_provisioning")):
        with pytest.raises(Conflict) as refused:
            tenants.plan_migration(head="r_head", uow=uow, slug=slug)
        assert refused.value.code == code


def run(uow, plan, **options):
    return {r.tenant_id: r for r in tenants.migrate_tenants(plan=plan, uow_factory=lambda: uow, **options)}


def test_each_tenant_ends_migrated_busy_current_skipped_or_failed_and_failures_are_recorded(uow):
    ok, busy, meanwhile, deleted, broken = (
        behind(uow, s) for s in ("okay", "busy", "done", "deleted", "broken")
    )
    plan = tenants.plan_migration(head="r_head", uow=uow)
    uow.tenants.locked.add(busy.id)  # another run holds it
    uow.tenants.rows[meanwhile.id] = replace(meanwhile, schema_version="r_head")  # finished by it
    uow.tenants.rows[deleted.id] = replace(deleted, status=TenantStatus.DELETED)
    uow.schemas.broken.add(broken.schema_name)
    results = run(uow, plan)
    outcomes = {t.slug: results[t.id].outcome for t in (ok, busy, meanwhile, deleted, broken)}
    assert outcomes == {
        "okay": MigrationOutcome.MIGRATED,
        "busy": MigrationOutcome.BUSY,
        "done": MigrationOutcome.CURRENT,
        "deleted": MigrationOutcome.SKIPPED,
        "broken": MigrationOutcome.FAILED,
    }
    assert uow.schemas.migrations == [(ok.schema_name, "r_first")], "only what needed it, from its version"
    assert results[ok.id].method is UpgradeMethod.SCRIPT and results[ok.id].version == "r_head"
    assert uow.tenants.get(ok.id).schema_version == "r_head"
    assert results[broken.id].error == "RuntimeError: column already exists" and not results[broken.id].ok
    assert uow.tenants.get(broken.id).last_migration_error == "RuntimeError: column already exists"
    assert uow.tenants.get(broken.id).schema_version == "r_first"
    assert uow.tenants.get(busy.id).schema_version == "r_first"


def test_a_success_clears_the_previous_failure(uow):
    tenant = behind(uow, "acme", error="LockNotAvailable: lock timeout")
    results = run(uow, tenants.plan_migration(head="r_head", uow=uow))
    assert results[tenant.id].outcome is MigrationOutcome.MIGRATED
    assert uow.tenants.get(tenant.id).last_migration_error is None


class DroppingUnitOfWork(FakeRegistryUnitOfWork):
    """The connection drops on the first read of the registry; the next one works."""

    drops = 1

    def __enter__(self):
        super().__enter__()
        if DroppingUnitOfWork.drops:
            DroppingUnitOfWork.drops -= 1
            self.rollback()
            raise ConnectionError("server closed the connection unexpectedly")
        return self


def test_a_dropped_connection_is_reported_and_recorded_on_a_fresh_one():
    uow = DroppingUnitOfWork()
    DroppingUnitOfWork.drops = 0
    tenant = behind(uow, "acme")
    plan = MigrationPlan("r_head", 1, [tenant])
    DroppingUnitOfWork.drops = 1
    [result] = tenants.migrate_tenants(plan=plan, uow_factory=lambda: uow)
    assert result.outcome is MigrationOutcome.FAILED and result.error.startswith("ConnectionError")
    assert uow.tenants.get(tenant.id).last_migration_error == result.error


def test_jobs_must_be_positive(uow):
    with pytest.raises(ValueError):
        list(tenants.migrate_tenants(plan=MigrationPlan("r_head", 0, []), uow_factory=lambda: uow, jobs=0))


def test_an_empty_plan_does_nothing(uow):
    workspace(uow)
    assert run(uow, tenants.plan_migration(head="r_head", uow=uow)) == {}
    assert uow.schemas.migrations == []


@pytest.mark.parametrize("status", [TenantStatus.DELETED, TenantStatus.PROVISIONING])
def test_a_deleted_or_unfinished_tenant_has_nothing_to_downgrade(uow, status):
    tenant = workspace(uow)
    uow.tenants.rows[tenant.id] = replace(tenant, status=status)
    with pytest.raises(Conflict):
        tenants.downgrade_tenant(slug="acme", revision="r_first", uow=uow)
    assert uow.schemas.schemas[tenant.schema_name] == "r_head"
    assert events(uow, "tenant.downgraded") == []
