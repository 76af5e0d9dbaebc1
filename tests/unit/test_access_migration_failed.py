"""A tenant whose last migration failed is unavailable (503 `tenant_unavailable`) to everyone,
after the permanent states (disabled, deleted) and before everything else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from backend.domain.access import AccessMode, resolve_access, route_refusal
from backend.domain.identity import Role
from backend.domain.tenants import Plan, TenantStatus

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
inputs = st.fixed_dictionaries(
    {
        "role": st.sampled_from(Role),
        "worker_verified": st.booleans(),
        "tenant_status": st.sampled_from(TenantStatus),
        "trial_ends_at": st.one_of(
            st.none(), st.just(NOW - timedelta(days=1)), st.just(NOW + timedelta(days=1))
        ),
        "plan": st.sampled_from(Plan),
        "now": st.just(NOW),
    }
)


@given(inputs)
def test_a_failed_migration_makes_the_tenant_unavailable_unless_disabled_or_deleted(case):
    decision = resolve_access(**case, migration_failed=True)
    if case["tenant_status"] is TenantStatus.DISABLED:
        assert (decision.mode, decision.code) == (AccessMode.BLOCKED, "tenant_disabled")
    elif case["tenant_status"] is TenantStatus.DELETED:
        assert (decision.mode, decision.code) == (AccessMode.BLOCKED, "tenant_deleted")
    else:
        assert (decision.mode, decision.code) == (AccessMode.UNAVAILABLE, "tenant_unavailable")
        # No route is exempt: not the export, not the deletion's cancellation, not a read.
        for method in ("GET", "POST", "DELETE"):
            refusal = route_refusal(decision, method=method, read_only_ok=True, deletion_ok=True)
            assert refusal is not None and refusal.code == "tenant_unavailable"


@given(inputs)
def test_without_a_failed_migration_nothing_changes(case):
    assert resolve_access(**case, migration_failed=False) == resolve_access(**case)
