"""Access modes: a pure policy over the caller's role and the tenant's state.

The table of the API contract (design/api-contract.md, "Access modes"), in precedence order:

| situation                         | worker                           | client                   |
|-----------------------------------|----------------------------------|--------------------------|
| tenant still provisioning         | unavailable `tenant_unavailable` | same                     |
| tenant disabled                   | blocked `tenant_disabled`        | blocked `tenant_disabled`|
| deleted                           | blocked `tenant_deleted`         | blocked `tenant_deleted` |
| its last migration failed (2)     | unavailable `tenant_unavailable` | same                     |
| deletion scheduled                | blocked `tenant_deleted` (1)     | blocked `tenant_deleted` |
| worker not verified               | blocked `worker_unverified`      | (n/a)                    |
| second factor required, none on   | blocked `mfa_enrolment_required` (3) | (n/a)                |
| paid plan, or trial still running | active                           | active                   |
| trial over, not paid              | read_only `trial_expired`        | blocked `trial_expired`  |

(1) routes marked `deletion_ok` (export, cancelling the deletion) still run, under the mode
the rows below give.
(2) the registry's `last_migration_error` is set: the schema stayed at its old revision while
the code moved on; it is served again once a migration run succeeds (docs/security.md). A
schema merely behind head is served: expand/contract keeps the old revision working while a
fleet run goes through the tenants.
(3) the workspace requires a second factor of its workers (the owner's setting) and this worker
has none turned on: routes marked `mfa_enrolment_ok` (enrolling, `GET /me`, the caller's
password and sessions, logout) still run, under the mode the rows below give, so that the
worker can enrol; everything else answers 403 `mfa_enrolment_required` (docs/security.md).

A trial tenant without an end date counts as expired: the policy fails closed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from backend.domain.identity import Role
from backend.domain.tenants import Plan, TenantStatus


class AccessMode(enum.StrEnum):
    ACTIVE = "active"
    READ_ONLY = "read_only"
    BLOCKED = "blocked"
    UNAVAILABLE = "unavailable"  # the tenant is not ready yet: 503, retry later


@dataclass(frozen=True)
class AccessDecision:
    mode: AccessMode
    code: str | None = None  # why it is not `active`: an error code of the contract
    # Set when the only block is a scheduled deletion and the caller is a worker: routes
    # marked `deletion_ok` (export, cancelling the deletion) then run under this decision.
    during_deletion: AccessDecision | None = None
    # Set when a worker must enrol a second factor first: routes marked `mfa_enrolment_ok`
    # then run under this decision.
    until_enrolled: AccessDecision | None = None


ACTIVE = AccessDecision(AccessMode.ACTIVE)
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _blocked(code: str) -> AccessDecision:
    return AccessDecision(AccessMode.BLOCKED, code)


def _trial_over(plan: Plan, trial_ends_at: datetime | None, now: datetime) -> bool:
    if plan is Plan.PAID:
        return False
    return trial_ends_at is None or now >= trial_ends_at


def _subscription_mode(
    role: Role, worker_verified: bool, plan: Plan, trial_ends_at: datetime | None, now: datetime
) -> AccessDecision:
    if role is Role.WORKER and not worker_verified:
        return _blocked("worker_unverified")
    if not _trial_over(plan, trial_ends_at, now):
        return ACTIVE
    if role is Role.WORKER:
        return AccessDecision(AccessMode.READ_ONLY, "trial_expired")
    return _blocked("trial_expired")


def mfa_enrolment_due(role: Role, *, mfa_required: bool, mfa_enabled: bool) -> bool:
    """A worker of a workspace that requires a second factor, without one turned on. Clients
    are never held: the setting is about the people who see the whole workspace."""
    return role is Role.WORKER and mfa_required and not mfa_enabled


def _with_mfa_gate(decision: AccessDecision, enrolment_due: bool) -> AccessDecision:
    if not enrolment_due or decision.mode not in (AccessMode.ACTIVE, AccessMode.READ_ONLY):
        return decision
    return AccessDecision(AccessMode.BLOCKED, "mfa_enrolment_required", until_enrolled=decision)


def resolve_access(
    *,
    role: Role,
    worker_verified: bool,
    tenant_status: TenantStatus,
    trial_ends_at: datetime | None,
    plan: Plan,
    now: datetime,
    migration_failed: bool = False,
    mfa_enrolment_due: bool = False,
) -> AccessDecision:
    """The caller's access mode and, unless active, the code that explains it.

    `worker_verified` is the caller's own email verification; it only matters for workers.
    `migration_failed`: the registry records that the tenant's last migration failed.
    `mfa_enrolment_due`: see `mfa_enrolment_due()` (only matters for workers)."""
    if tenant_status is TenantStatus.PROVISIONING:
        return AccessDecision(AccessMode.UNAVAILABLE, "tenant_unavailable")
    if tenant_status is TenantStatus.DISABLED:
        return _blocked("tenant_disabled")
    if tenant_status is TenantStatus.DELETED:
        return _blocked("tenant_deleted")
    if migration_failed:
        return AccessDecision(AccessMode.UNAVAILABLE, "tenant_unavailable")
    subscription = _subscription_mode(role, worker_verified, plan, trial_ends_at, now)
    subscription = _with_mfa_gate(subscription, role is Role.WORKER and mfa_enrolment_due)
    if tenant_status is TenantStatus.DELETION_SCHEDULED:
        if role is Role.WORKER:
            return AccessDecision(AccessMode.BLOCKED, "tenant_deleted", during_deletion=subscription)
        return _blocked("tenant_deleted")
    return subscription


def route_refusal(
    decision: AccessDecision,
    *,
    method: str,
    read_only_ok: bool,
    deletion_ok: bool,
    mfa_enrolment_ok: bool = False,
) -> AccessDecision | None:
    """What refuses this route under `decision` (None: the route may run).

    A mutating method is refused in read-only mode unless the route is `read_only_ok`; a
    blocked tenant refuses everything, except that a route marked `deletion_ok` runs for a
    worker whose tenant is only scheduled for deletion (under the mode it would otherwise have),
    and a route marked `mfa_enrolment_ok` runs for a worker held until they enrol a second
    factor (likewise)."""
    if decision.during_deletion is not None and deletion_ok:
        decision = decision.during_deletion
    if decision.until_enrolled is not None and mfa_enrolment_ok:
        decision = decision.until_enrolled
    if decision.mode in (AccessMode.BLOCKED, AccessMode.UNAVAILABLE):
        return decision
    if decision.mode is AccessMode.READ_ONLY and method.upper() in MUTATING_METHODS and not read_only_ok:
        return AccessDecision(AccessMode.READ_ONLY, "read_only")
    return None
