"""Retention: one purge applies every rule (docs/data-lifecycle.md) and reports what it
removed; a dry run reports what it would remove and changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from backend.domain.lifecycle import Actor, RetentionPolicy
from backend.domain.tenants import Tenant
from backend.service import deletion
from backend.service.media import PURGE_BATCH, purge_deleted_media
from backend.service.ports import (
    DeletionUnitOfWork,
    ExportFiles,
    MediaStorage,
    RetentionUnitOfWork,
    TenantUnitOfWork,
)


@dataclass
class RetentionReport:
    dry_run: bool
    tenants_purged: list[str] = field(default_factory=list)  # ids of due deletions
    media_removed: dict[str, int] = field(default_factory=dict)  # tenant id -> items
    exports_removed: list[str] = field(default_factory=list)  # paths
    audit_events_removed: int = 0
    failures: list[str] = field(default_factory=list)  # one line each


def purge_media(
    *,
    tenant_id: uuid.UUID,
    cutoff: datetime,
    dry_run: bool,
    uow_factory: Callable[[], TenantUnitOfWork],
    storage: MediaStorage,
    batch_size: int = PURGE_BATCH,
) -> int:
    """Removes the media soft-deleted before `cutoff` (the media area's purge: file first, then
    row, one batch per transaction); a dry run only counts them."""
    if dry_run:
        with uow_factory() as uow:
            return uow.media.count_deleted_before(cutoff)
    return purge_deleted_media(
        tenant_id=tenant_id,
        older_than=cutoff,
        uow_factory=uow_factory,
        storage=storage,
        batch_size=batch_size,
    )


def purge_due_media(
    *,
    now: datetime,
    policy: RetentionPolicy,
    dry_run: bool,
    retention_uow_factory: Callable[[], RetentionUnitOfWork],
    tenant_uow_factory: Callable[[Tenant], TenantUnitOfWork],
    storage: MediaStorage,
    failures: list[str],
    actor: Actor,
    skip: set[str] = frozenset(),
) -> dict[str, int]:
    """Purges the media past their retention in the tenants the registry says hold some (one
    index read: a tenant with an empty or recent trash is never opened); returns the count
    removed per tenant id. Each tenant is audited (`media.purged`) as soon as it is done, so a
    run cut short keeps the record of what it finished; its note then follows the oldest item
    left."""
    cutoff = policy.media_cutoff(now)
    with retention_uow_factory() as uow:
        due = uow.scheduled.media_due(cutoff)
    removed: dict[str, int] = {}
    for tenant in due:
        if str(tenant.id) in skip:
            continue
        try:
            count = purge_media(
                tenant_id=tenant.id,
                cutoff=cutoff,
                dry_run=dry_run,
                uow_factory=lambda tenant=tenant: tenant_uow_factory(tenant),
                storage=storage,
            )
            if not dry_run:
                if count:
                    _record(retention_uow_factory, "media.purged", actor, tenant.id, count)
                _settle_trash(tenant_uow_factory(tenant))
        except Exception as error:  # noqa: BLE001 - one tenant's failure must not stop the rest
            failures.append(f"media {tenant.id}: {_one_line(error)}")
            continue
        if count:
            removed[str(tenant.id)] = count
    return removed


def _settle_trash(uow: TenantUnitOfWork) -> None:
    """The note is locked first: a soft-delete committing meanwhile waits, then re-dates it."""
    with uow:
        uow.media_trash.lock()
        uow.media_trash.settle(uow.media.oldest_deleted_at())
        uow.commit()


def apply_retention(
    *,
    now: datetime,
    policy: RetentionPolicy,
    dry_run: bool,
    actor: Actor,
    deletion_uow_factory: Callable[[], DeletionUnitOfWork],
    retention_uow_factory: Callable[[], RetentionUnitOfWork],
    tenant_uow_factory: Callable[[Tenant], TenantUnitOfWork],
    storage: MediaStorage,
    export_files: ExportFiles,
    finish_deletions: bool = True,
) -> RetentionReport:
    """Finishes due deletions (unless `finish_deletions` is False: the worker runs them as a
    task of their own), then removes soft-deleted media, old export archives and old
    audit events past their retention; a failure is reported and the other rules go on.
    Only tenants with something due are opened (the registry's indexes say which)."""
    report = RetentionReport(dry_run=dry_run)
    due = deletion.due_deletions(now=now, uow=deletion_uow_factory()) if finish_deletions else []
    for tenant in due:
        if not dry_run:
            try:
                deletion.purge_tenant(
                    tenant_id=tenant.id,
                    now=now,
                    actor=actor,
                    uow_factory=deletion_uow_factory,
                    storage=storage,
                )
            except Exception as error:  # noqa: BLE001 - one tenant's failure must not stop the rest
                report.failures.append(f"purge {tenant.id}: {_one_line(error)}")
                continue
        report.tenants_purged.append(str(tenant.id))

    for tenant_id, count in purge_due_media(
        now=now,
        policy=policy,
        dry_run=dry_run,
        skip=set(report.tenants_purged),
        retention_uow_factory=retention_uow_factory,
        tenant_uow_factory=tenant_uow_factory,
        storage=storage,
        failures=report.failures,
        actor=actor,
    ).items():
        report.media_removed[tenant_id] = count

    for path in export_files.older_than(policy.export_cutoff(now)):
        if dry_run or export_files.remove(Path(path)):
            report.exports_removed.append(str(path))

    with retention_uow_factory() as uow:
        cutoff = policy.audit_cutoff(now)
        if dry_run:
            report.audit_events_removed = uow.retention.audit_events_before(cutoff)
        else:
            report.audit_events_removed = uow.retention.delete_audit_events_before(cutoff)
            uow.commit()

    if not dry_run:
        removed = len(report.tenants_purged) + sum(report.media_removed.values())
        removed += len(report.exports_removed) + report.audit_events_removed
        outcome = "failure" if report.failures else "success"
        _record(retention_uow_factory, "retention.applied", actor, None, removed, outcome)
    return report


def _record(uow_factory, event, actor: Actor, tenant_id, count: int, outcome="success") -> None:
    with uow_factory() as uow:
        uow.audit.record(
            event,
            tenant_id=tenant_id,
            actor_user_id=actor.user_id,
            actor_role=actor.role,
            target_type="tenant" if tenant_id else None,
            target_id=str(tenant_id) if tenant_id else None,
            outcome=outcome,
            metadata={"count": count},
        )
        uow.commit()


def _one_line(error: Exception) -> str:
    text = f"{type(error).__name__}: {error}".splitlines()
    return (text[0] if text else type(error).__name__)[:300]
