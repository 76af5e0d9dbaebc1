"""Removal of signups never verified: after UNVERIFIED_RETENTION_DAYS the worker removes the
account, its workspace, the workspace's schema and its role (docs/data-lifecycle.md).

An unauthenticated route creates them; without this, every abandoned or scripted signup would
keep a schema and a role forever. Each step is idempotent and commits on its own, so a run
killed anywhere is finished by the next: the workspace goes through the tenant purge (its
deletion is made due now, then each purge step), then the user row goes once it belongs to
nothing. A signup that is not bare (someone else in the workspace, or the user a member
elsewhere) is left alone and reported.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from backend.domain.lifecycle import Actor, unverified_cutoff
from backend.service import deletion
from backend.service.ports import DeletionUnitOfWork, MediaStorage, RetentionUnitOfWork

REMOVED_EVENT = "auth.unverified_removed"


@dataclass
class UnverifiedReport:
    removed: list[uuid.UUID] = field(default_factory=list)  # user ids
    workspaces_removed: int = 0
    skipped: list[uuid.UUID] = field(default_factory=list)  # not bare signups
    failures: list[str] = field(default_factory=list)


def remove_unverified_signups(
    *,
    now: datetime,
    retention_days: int,
    actor: Actor,
    retention_uow_factory: Callable[[], RetentionUnitOfWork],
    deletion_uow_factory: Callable[[], DeletionUnitOfWork],
    storage: MediaStorage,
) -> UnverifiedReport:
    """Removes every bare signup created before the cutoff and still unverified; the registry's
    index on unverified users says which (no tenant schema is opened for the others)."""
    report = UnverifiedReport()
    with retention_uow_factory() as uow:
        found = uow.scheduled.unverified_signups(unverified_cutoff(now, retention_days))
    for signup in found:
        if signup.shared:
            report.skipped.append(signup.user_id)
            continue
        try:
            removed = _remove(
                signup.user_id, signup.owned, now, actor, retention_uow_factory, deletion_uow_factory, storage
            )
        except Exception as error:  # noqa: BLE001 - one signup's failure must not stop the rest
            report.failures.append(f"unverified {signup.user_id}: {type(error).__name__}")
            continue
        if removed is not None:
            report.removed.append(signup.user_id)
            report.workspaces_removed += removed
    return report


def _remove(
    user_id: uuid.UUID,
    owned: tuple[uuid.UUID, ...],
    now: datetime,
    actor: Actor,
    retention_uow_factory: Callable[[], RetentionUnitOfWork],
    deletion_uow_factory: Callable[[], DeletionUnitOfWork],
    storage: MediaStorage,
) -> int | None:
    """The user's workspaces, then the user; None when the user verified meanwhile."""
    for tenant_id in owned:
        if not _still_unverified(user_id, tenant_id, now, actor, deletion_uow_factory()):
            return None
        deletion.purge_tenant(
            tenant_id=tenant_id, now=now, actor=actor, uow_factory=deletion_uow_factory, storage=storage
        )
    with retention_uow_factory() as uow:
        if not uow.scheduled.remove_unverified_user(user_id):
            return None
        uow.audit.record(
            REMOVED_EVENT,
            tenant_id=owned[0] if owned else None,
            actor_user_id=actor.user_id,
            actor_role=actor.role,
            target_type="user",
            target_id=str(user_id),
            metadata={"count": len(owned)},
        )
        uow.commit()
    return len(owned)


def _still_unverified(
    user_id: uuid.UUID, tenant_id: uuid.UUID, now: datetime, actor: Actor, uow: DeletionUnitOfWork
) -> bool:
    """Makes the workspace's deletion due now, in one transaction with the user's row locked:
    a verification committing meanwhile either came first (nothing is removed) or waits and
    finds the workspace being purged."""
    with uow:
        user = uow.users.get(user_id, for_update=True)
        if user is None or user.verified_at is not None:
            return False
        if uow.tenants.get(tenant_id) is not None:
            deletion.schedule_in(uow, tenant_id=tenant_id, now=now, actor=actor)
        uow.commit()
    return True
