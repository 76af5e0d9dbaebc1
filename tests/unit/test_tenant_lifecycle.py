"""Pure rules of the tenant lifecycle: operator status changes, the one-line error a failed
migration records, the worker batches. How each tenant's migration ends is tested on the shared
fakes in tests/unit/service/test_tenant_operations.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from backend.domain.errors import Conflict
from backend.domain.tenants import (
    Plan,
    Tenant,
    TenantStatus,
    check_operator_status_change,
)
from backend.service import tenants as service

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
