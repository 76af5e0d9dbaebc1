"""Pure rules of the tenant lifecycle: operator status changes, and how one tenant's
migration ends (with small fakes in place of the database)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from backend.domain.errors import Conflict
from backend.domain.tenants import (
    Plan,
    SchemaUpgrade,
    Tenant,
    TenantStatus,
    UpgradeMethod,
    check_operator_status_change,
)
from backend.service import tenants as service
from backend.service.tenants import MigrationOutcome, MigrationPlan

S = TenantStatus


@pytest.mark.parametrize(
    ("current", "target", "changes"),
    [
        (S.ACTIVE, S.DISABLED, True),
        (S.DISABLED, S.ACTIVE, True),
        (S.DISABLED, S.DISABLED, False),
        (S.ACTIVE, S.ACTIVE, False),
    ],
)
def test_operators_move_tenants_between_active_and_disabled(current, target, changes):
    assert check_operator_status_change(current, target) is changes


@pytest.mark.parametrize("current", [S.DELETION_SCHEDULED, S.DELETED, S.PROVISIONING])
@pytest.mark.parametrize("target", [S.ACTIVE, S.DISABLED])
def test_a_deleted_scheduled_or_unfinished_tenant_is_refused(current, target):
    with pytest.raises(Conflict):
        check_operator_status_change(current, target)


def make_tenant(version: str | None = "r1", error: str | None = None) -> Tenant:
    tenant_id = uuid.uuid4()
    return Tenant(
        id=tenant_id,
        slug=f"t-{tenant_id.hex[:8]}",
        name="T",
        schema_name=f"tenant_{tenant_id.hex}",
        status=S.ACTIVE,
        plan=Plan.TRIAL,
        trial_ends_at=None,
        created_at=datetime.now(UTC),
        schema_version=version,
        last_migration_error=error,
    )


class FakeRegistry:
    """The registry and the schemas of a few tenants, shared by the fake units of work."""

    def __init__(self, *tenants: Tenant, locked: set | None = None, broken: set | None = None):
        self.rows = {t.id: t for t in tenants}
        self.locked = locked or set()  # held by "another run"
        self.broken = broken or set()  # schemas whose migration raises
        self.migrations: list[tuple[str, str | None]] = []  # (schema, from_version)
        self.commits = 0


class FakeUnitOfWork:
    def __init__(self, registry: FakeRegistry, head: str) -> None:
        self.registry, self.head = registry, head
        self.tenants, self.schemas = self, self
        self.pending: dict = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.pending = {}

    def commit(self):
        for tenant_id, (version, error) in self.pending.items():
            row = self.registry.rows[tenant_id]
            self.registry.rows[tenant_id] = replace(
                row, schema_version=version or row.schema_version, last_migration_error=error
            )
        self.registry.commits += 1

    def try_lock(self, tenant_id):
        return tenant_id not in self.registry.locked

    def get(self, tenant_id):
        return self.registry.rows.get(tenant_id)

    def migrate(self, schema_name, *, from_version=None, lock_timeout_ms=None):
        if schema_name in self.registry.broken:
            raise RuntimeError("column already exists")
        self.registry.migrations.append((schema_name, from_version))
        return SchemaUpgrade(self.head, UpgradeMethod.SCRIPT)

    def record_migration(self, tenant_id, version, error):
        self.pending[tenant_id] = (version, error)


def run(registry: FakeRegistry, tenants: list[Tenant], head: str = "r2") -> dict:
    plan = MigrationPlan(head, len(tenants), tenants)
    results = service.migrate_tenants(plan=plan, uow_factory=lambda: FakeUnitOfWork(registry, head))
    return {r.tenant_id: r for r in results}


def test_each_tenant_ends_migrated_busy_current_or_failed_and_failures_are_recorded():
    behind, busy, done_meanwhile, broken = (make_tenant() for _ in range(4))
    registry = FakeRegistry(
        behind, busy, done_meanwhile, broken, locked={busy.id}, broken={broken.schema_name}
    )
    registry.rows[done_meanwhile.id] = replace(done_meanwhile, schema_version="r2")  # another run
    results = run(registry, [behind, busy, done_meanwhile, broken])

    assert results[behind.id].outcome is MigrationOutcome.MIGRATED
    assert results[busy.id].outcome is MigrationOutcome.BUSY
    assert results[done_meanwhile.id].outcome is MigrationOutcome.CURRENT
    assert results[broken.id].outcome is MigrationOutcome.FAILED
    assert "RuntimeError: column already exists" == results[broken.id].error
    # Nobody else's schema was touched; the step starts where the registry says the schema is.
    assert registry.migrations == [(behind.schema_name, behind.schema_version)]
    assert results[behind.id].method is UpgradeMethod.SCRIPT
    assert registry.rows[behind.id].schema_version == "r2"
    assert registry.rows[broken.id].schema_version == "r1"
    assert registry.rows[broken.id].last_migration_error == "RuntimeError: column already exists"


def test_a_success_clears_the_previous_error():
    tenant = make_tenant("r1", error="LockNotAvailable: lock timeout")
    registry = FakeRegistry(tenant)
    assert run(registry, [tenant])[tenant.id].outcome is MigrationOutcome.MIGRATED
    assert registry.rows[tenant.id].last_migration_error is None


def test_describe_keeps_one_bounded_line():
    error = RuntimeError("first line\n[SQL: ALTER TABLE ...]\n" + "x" * 1000)
    assert service.describe(error) == "RuntimeError: first line"
    assert len(service.describe(RuntimeError("y" * 1000))) == 500


@pytest.mark.parametrize(("count", "workers"), [(0, 2), (3, 2), (9, 2), (100, 2), (1000, 4), (41, 1)])
def test_worker_batches_hold_every_tenant_once_in_order_and_balance(count, workers):
    tenants = [make_tenant() for _ in range(count)]
    parts = service.batches(tenants, workers)
    assert [t for part in parts for t in part] == tenants
    assert all(1 <= len(part) <= service.MAX_BATCH for part in parts)
    assert len(parts) >= min(count, workers * 4)
