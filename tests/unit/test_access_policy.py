"""The access policy over the whole matrix of the API contract (design/api-contract.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.domain.access import AccessMode, resolve_access, route_refusal
from backend.domain.identity import Role
from backend.domain.tenants import Plan, TenantStatus

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def expected(
    *, role, worker_verified, tenant_status, trial_ends_at, plan, now, mfa_enrolment_due=False
) -> tuple[str, str | None]:
    """The contract's table, written out row by row, independently of the implementation."""
    if tenant_status is TenantStatus.PROVISIONING:
        return "unavailable", "tenant_unavailable"
    if tenant_status is TenantStatus.DISABLED:
        return "blocked", "tenant_disabled"
    if tenant_status in (TenantStatus.DELETION_SCHEDULED, TenantStatus.DELETED):
        return "blocked", "tenant_deleted"
    if role is Role.WORKER and not worker_verified:
        return "blocked", "worker_unverified"
    if role is Role.WORKER and mfa_enrolment_due:
        return "blocked", "mfa_enrolment_required"
    trial_running = trial_ends_at is not None and now < trial_ends_at
    if plan is Plan.PAID or trial_running:
        return "active", None
    return ("read_only", "trial_expired") if role is Role.WORKER else ("blocked", "trial_expired")


trial_ends = st.one_of(
    st.none(),
    st.timedeltas(min_value=timedelta(days=-400), max_value=timedelta(days=400)).map(lambda d: NOW + d),
    st.just(NOW),  # the boundary: a trial ending now is over
)
inputs = st.fixed_dictionaries(
    {
        "role": st.sampled_from(Role),
        "worker_verified": st.booleans(),
        "tenant_status": st.sampled_from(TenantStatus),
        "trial_ends_at": trial_ends,
        "plan": st.sampled_from(Plan),
        "now": st.just(NOW),
        "mfa_enrolment_due": st.booleans(),
    }
)


@given(inputs)
def test_policy_matches_the_contract_table(case):
    decision = resolve_access(**case)
    assert (decision.mode.value, decision.code) == expected(**case)


@given(inputs, st.sampled_from(METHODS), st.booleans(), st.booleans(), st.booleans())
def test_route_refusal_applies_the_marks(case, method, read_only_ok, deletion_ok, mfa_enrolment_ok):
    decision = resolve_access(**case)
    refusal = route_refusal(
        decision,
        method=method,
        read_only_ok=read_only_ok,
        deletion_ok=deletion_ok,
        mfa_enrolment_ok=mfa_enrolment_ok,
    )
    exempt_deletion = (
        deletion_ok
        and case["role"] is Role.WORKER
        and case["tenant_status"] is TenantStatus.DELETION_SCHEDULED
    )
    if exempt_deletion:
        # Export and cancelling the deletion run under the mode the tenant would otherwise have.
        case = {**case, "tenant_status": TenantStatus.ACTIVE}
    if mfa_enrolment_ok:
        # Enrolment (and the caller's own account routes) run for a worker held until enrolled.
        case = {**case, "mfa_enrolment_due": False}
    mode, code = expected(**case)
    if mode in ("blocked", "unavailable"):
        assert refusal is not None and refusal.code == code
    elif mode == "read_only" and method in MUTATING and not read_only_ok:
        assert refusal is not None and refusal.code == "read_only"
        assert refusal.mode is AccessMode.READ_ONLY
    else:
        assert refusal is None


@given(inputs)
def test_a_client_is_never_read_only_and_a_paid_plan_never_expires(case):
    decision = resolve_access(**case)
    if case["role"] is Role.CLIENT:
        assert decision.mode is not AccessMode.READ_ONLY
        assert decision.code != "worker_unverified"  # verification is the worker's matter
    if case["plan"] is Plan.PAID:
        assert decision.code != "trial_expired"


@pytest.mark.parametrize(
    ("role", "verified", "status", "trial_days", "plan", "mode", "code"),
    [
        (Role.WORKER, True, TenantStatus.DISABLED, 5, Plan.TRIAL, "blocked", "tenant_disabled"),
        (Role.CLIENT, True, TenantStatus.DISABLED, 5, Plan.PAID, "blocked", "tenant_disabled"),
        (Role.WORKER, True, TenantStatus.DELETION_SCHEDULED, 5, Plan.TRIAL, "blocked", "tenant_deleted"),
        (Role.CLIENT, True, TenantStatus.DELETION_SCHEDULED, 5, Plan.TRIAL, "blocked", "tenant_deleted"),
        (Role.WORKER, True, TenantStatus.DELETED, 5, Plan.PAID, "blocked", "tenant_deleted"),
        (Role.WORKER, False, TenantStatus.ACTIVE, 5, Plan.TRIAL, "blocked", "worker_unverified"),
        (Role.CLIENT, False, TenantStatus.ACTIVE, 5, Plan.TRIAL, "active", None),
        (Role.WORKER, True, TenantStatus.ACTIVE, 5, Plan.TRIAL, "active", None),
        (Role.WORKER, True, TenantStatus.ACTIVE, -1, Plan.PAID, "active", None),
        (Role.WORKER, True, TenantStatus.ACTIVE, -1, Plan.TRIAL, "read_only", "trial_expired"),
        (Role.CLIENT, True, TenantStatus.ACTIVE, -1, Plan.TRIAL, "blocked", "trial_expired"),
        (Role.CLIENT, True, TenantStatus.ACTIVE, None, Plan.TRIAL, "blocked", "trial_expired"),
        (Role.WORKER, True, TenantStatus.PROVISIONING, 5, Plan.TRIAL, "unavailable", "tenant_unavailable"),
    ],
)
def test_contract_rows(role, verified, status, trial_days, plan, mode, code):
    trial_ends_at = None if trial_days is None else NOW + timedelta(days=trial_days)
    decision = resolve_access(
        role=role,
        worker_verified=verified,
        tenant_status=status,
        trial_ends_at=trial_ends_at,
        plan=plan,
        now=NOW,
    )
    assert (decision.mode.value, decision.code) == (mode, code)


def test_deletion_scheduled_worker_keeps_export_and_cancel_only():
    decision = resolve_access(
        role=Role.WORKER,
        worker_verified=True,
        tenant_status=TenantStatus.DELETION_SCHEDULED,
        trial_ends_at=NOW - timedelta(days=1),
        plan=Plan.TRIAL,
        now=NOW,
    )
    assert (
        route_refusal(decision, method="GET", read_only_ok=False, deletion_ok=False).code == "tenant_deleted"
    )
    assert route_refusal(decision, method="GET", read_only_ok=True, deletion_ok=True) is None
    # Trial over as well: a mutation marked deletion_ok but not read_only_ok is read-only.
    refusal = route_refusal(decision, method="DELETE", read_only_ok=False, deletion_ok=True)
    assert refusal.code == "read_only"
    assert route_refusal(decision, method="DELETE", read_only_ok=True, deletion_ok=True) is None


def test_a_worker_held_for_a_second_factor_keeps_the_enrolment_routes_under_the_mode_below():
    decision = resolve_access(
        role=Role.WORKER,
        worker_verified=True,
        tenant_status=TenantStatus.ACTIVE,
        trial_ends_at=NOW - timedelta(days=1),
        plan=Plan.TRIAL,
        now=NOW,
        mfa_enrolment_due=True,
    )
    assert (decision.mode, decision.code) == (AccessMode.BLOCKED, "mfa_enrolment_required")
    gate = route_refusal(decision, method="GET", read_only_ok=True, deletion_ok=True)
    assert gate.code == "mfa_enrolment_required"
    assert (
        route_refusal(decision, method="GET", read_only_ok=False, deletion_ok=False, mfa_enrolment_ok=True)
        is None
    )
    # Under the gate the trial is over: a mutation still needs read_only_ok.
    mutation = route_refusal(
        decision, method="POST", read_only_ok=False, deletion_ok=False, mfa_enrolment_ok=True
    )
    assert mutation.code == "read_only"
    client = resolve_access(
        role=Role.CLIENT,
        worker_verified=False,
        tenant_status=TenantStatus.ACTIVE,
        trial_ends_at=NOW + timedelta(days=1),
        plan=Plan.TRIAL,
        now=NOW,
        mfa_enrolment_due=True,
    )
    assert client.mode is AccessMode.ACTIVE  # clients are never held
