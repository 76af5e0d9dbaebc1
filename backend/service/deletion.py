"""Tenant deletion: the owner or an operator schedules it, the owner may cancel it during the
grace period, and the purge finishes due deletions step by step.

Every purge step is idempotent and commits on its own, and the registry row turns `deleted`
only in the last one: a purge that crashed anywhere is finished by running it again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from backend.domain.errors import Conflict, NotFound
from backend.domain.lifecycle import (
    PURGE_STEPS,
    Actor,
    check_cancellable,
    check_confirm_slug,
    check_schedulable,
    deletion_due_at,
    is_due,
)
from backend.domain.tenants import Tenant, TenantStatus
from backend.service.audit import record_tenant_event
from backend.service.ports import DeletionUnitOfWork, MediaStorage

StepHook = Callable[[str, int], None]


def _locked(uow: DeletionUnitOfWork, tenant_id: uuid.UUID) -> Tenant:
    if not uow.deletion.lock(tenant_id):
        raise NotFound()
    return uow.tenants.get(tenant_id)


def _schedule(
    uow: DeletionUnitOfWork, tenant: Tenant, due_at: datetime, actor: Actor, grace_days: int
) -> datetime:
    uow.deletion.schedule(tenant.id, due_at)
    record_tenant_event(
        uow, "tenant.deletion_scheduled", tenant.id, actor, metadata={"grace_days": grace_days}
    )
    return due_at


def request_deletion(
    *,
    tenant_id: uuid.UUID,
    confirm_slug: str,
    grace_days: int,
    now: datetime,
    actor: Actor,
    uow: DeletionUnitOfWork,
) -> datetime:
    """Schedules the workspace's deletion at its owner's request, once they confirmed it by
    typing its slug; a deletion already scheduled keeps its due date."""
    with uow:
        tenant = _locked(uow, tenant_id)
        check_confirm_slug(confirm_slug, tenant.slug)
        check_schedulable(tenant.status)
        if tenant.status is TenantStatus.DELETION_SCHEDULED:
            return tenant.deletion_due_at
        due_at = _schedule(uow, tenant, deletion_due_at(now, grace_days), actor, grace_days)
        uow.commit()
    return due_at


def schedule_deletion(
    *, slug: str, grace_days: int, now: datetime, actor: Actor, uow: DeletionUnitOfWork
) -> Tenant:
    """Schedules a tenant's deletion for an operator; `grace_days=0` makes it due at once,
    also for a deletion scheduled earlier with a longer grace period."""
    with uow:
        found = uow.tenants.get_by_slug(slug)
        if found is None:
            raise NotFound("not_found", f"no tenant {slug!r}")
        tenant = _locked(uow, found.id)
        check_schedulable(tenant.status)
        due_at = deletion_due_at(now, grace_days)
        if tenant.status is TenantStatus.DELETION_SCHEDULED and tenant.deletion_due_at <= due_at:
            return tenant
        _schedule(uow, tenant, due_at, actor, grace_days)
        uow.commit()
    return replace(tenant, status=TenantStatus.DELETION_SCHEDULED, deletion_due_at=due_at)


def cancel_deletion(*, tenant_id: uuid.UUID, now: datetime, actor: Actor, uow: DeletionUnitOfWork) -> None:
    """Cancels a scheduled deletion during its grace period; the tenant returns to the state
    it was in before (a disabled tenant stays disabled)."""
    with uow:
        tenant = _locked(uow, tenant_id)
        check_cancellable(tenant.status, tenant.deletion_due_at, now)
        uow.deletion.cancel(tenant.id)
        record_tenant_event(uow, "tenant.deletion_cancelled", tenant.id, actor)
        uow.commit()


def due_deletions(*, now: datetime, uow: DeletionUnitOfWork) -> list[Tenant]:
    """Lists the tenants whose grace period is over, oldest due first."""
    with uow:
        scheduled = uow.tenants.list(TenantStatus.DELETION_SCHEDULED)
    due = [t for t in scheduled if is_due(t.status, t.deletion_due_at, now)]
    return sorted(due, key=lambda t: t.deletion_due_at)


def schedule_in(uow: DeletionUnitOfWork, *, tenant_id: uuid.UUID, now: datetime, actor: Actor) -> None:
    """Makes a tenant's deletion due now, inside the caller's transaction (the unverified-signup
    removal); a deletion already due keeps its date, a deleted tenant stays as it is."""
    tenant = _locked(uow, tenant_id)
    if tenant.status is TenantStatus.DELETED:
        return
    if tenant.status is TenantStatus.DELETION_SCHEDULED and tenant.deletion_due_at <= now:
        return
    _schedule(uow, tenant, now, actor, 0)


@dataclass
class DuePurgeReport:
    purged: list[uuid.UUID] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # one line each


def purge_due_tenants(
    *,
    now: datetime,
    actor: Actor,
    uow_factory: Callable[[], DeletionUnitOfWork],
    storage: MediaStorage,
) -> DuePurgeReport:
    """Finishes every deletion past its grace period (the registry's index says which: no
    other tenant is opened); one tenant's failure is reported and the others go on, and the
    next run resumes it where it stopped. The run is audited when it did or missed anything."""
    report = DuePurgeReport()
    for tenant in due_deletions(now=now, uow=uow_factory()):
        try:
            purge_tenant(tenant_id=tenant.id, now=now, actor=actor, uow_factory=uow_factory, storage=storage)
        except Exception as error:  # noqa: BLE001 - one tenant's failure must not stop the rest
            report.failures.append(f"purge {tenant.id}: {type(error).__name__}")
            continue
        report.purged.append(tenant.id)
    if report.purged or report.failures:
        with uow_factory() as uow:
            uow.audit.record(
                DUE_PURGES_EVENT,
                actor_user_id=actor.user_id,
                actor_role=actor.role,
                outcome="failure" if report.failures else "success",
                metadata={"count": len(report.purged)},
            )
            uow.commit()
    return report


DUE_PURGES_EVENT = "tenant.due_purges"


@dataclass
class PurgeReport:
    tenant_id: uuid.UUID
    steps: dict[str, int] = field(default_factory=dict)  # step -> items removed
    already_purged: bool = False


def purge_tenant(
    *,
    tenant_id: uuid.UUID,
    now: datetime,
    actor: Actor,
    uow_factory: Callable[[], DeletionUnitOfWork],
    storage: MediaStorage,
    on_step: StepHook | None = None,
) -> PurgeReport:
    """Finishes a due deletion: revokes tokens, drops the schema, deletes the media, removes
    memberships and client-only users, and leaves a tombstone. Each step is re-checked and
    idempotent; a failure is audited and re-raised, and the next run resumes."""
    report = PurgeReport(tenant_id)
    with uow_factory() as uow:
        tenant = uow.tenants.get(tenant_id)
    if tenant is None:
        raise NotFound()
    if tenant.status is TenantStatus.DELETED:
        report.already_purged = True
        return report
    if not is_due(tenant.status, tenant.deletion_due_at, now):
        raise Conflict("deletion_not_due", "the tenant is not due for deletion")
    for step in PURGE_STEPS:
        try:
            count = _run_step(step, tenant, now, actor, uow_factory, storage)
        except Exception as error:
            with uow_factory() as uow:
                record_tenant_event(
                    uow,
                    f"tenant.purge.{step}",
                    tenant.id,
                    actor,
                    outcome="failure",
                    metadata={"code": type(error).__name__},
                )
                uow.commit()
            raise
        if count is None:  # someone else finished (or cancelled) it meanwhile
            report.already_purged = True
            return report
        report.steps[step] = count
        if on_step is not None:
            on_step(step, count)
    return report


def _run_step(
    step: str,
    tenant: Tenant,
    now: datetime,
    actor: Actor,
    uow_factory: Callable[[], DeletionUnitOfWork],
    storage: MediaStorage,
) -> int | None:
    """Run one step in its own transaction, the tenant row locked and still due."""
    with uow_factory() as uow:
        current = _locked(uow, tenant.id)
        if not is_due(current.status, current.deletion_due_at, now):
            return None
        metadata: dict = {}
        if step == "revoke_tokens":
            count = uow.deletion.remove_tokens(tenant.id)
        elif step == "drop_schema":
            uow.schemas.drop(tenant.schema_name)
            count = 1
        elif step == "delete_media":
            # Files are not transactional: deleting them twice is harmless, and the row lock
            # keeps a cancel from interleaving.
            count = storage.delete_tenant(tenant.id)
        elif step == "remove_members":
            memberships, users = uow.deletion.remove_members(tenant.id)
            count = memberships + users
            metadata["reason"] = f"{memberships} memberships, {users} client-only users"
        elif step == "tombstone":
            uow.deletion.tombstone(tenant.id, now)
            count = 1
        else:  # pragma: no cover - PURGE_STEPS and this function change together
            raise ValueError(step)
        event = "tenant.purged" if step == "tombstone" else f"tenant.purge.{step}"
        record_tenant_event(uow, event, tenant.id, actor, metadata={"count": count, **metadata})
        uow.commit()
    return count
