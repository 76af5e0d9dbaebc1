"""Tenant lifecycle use cases: provision, list, migrate the fleet, downgrade one tenant,
disable and enable."""

from __future__ import annotations

import enum
import logging
import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta

from backend.core.processes import ParentLifeline, watch_parent
from backend.domain.errors import Conflict, Invalid, NotFound, Unavailable
from backend.domain.identity import Role
from backend.domain.tenants import (
    DisableReason,
    Plan,
    Tenant,
    TenantStatus,
    UpgradeMethod,
    check_operator_status_change,
    schema_name_for,
    validate_slug,
    validate_workspace_name,
)
from backend.service.ports import JobQueue, RegistryUnitOfWork

log = logging.getLogger(__name__)

# The worker's task that tops the pool of spare workspaces up (backend/cli/worker.py).
REFILL_SPARES_TASK = "refill_spares"
PROVISIONING_QUEUE = "provisioning"
# How long a signup that found no ready workspace asks the client to wait: the worker builds
# one in tens of milliseconds once it has the job (docs/tenant-lifecycle.md, "Signup").
NO_WORKSPACE_RETRY_AFTER_S = 2


def provision_tenant(
    *,
    slug: str,
    name: str,
    owner_email: str,
    owner_name: str = "",
    owner_password_hash: str | None = None,
    trial_days: int,
    now: datetime,
    uow: RegistryUnitOfWork,
    actor_user_id: uuid.UUID | None = None,
    request_id: str | None = None,
    build_schema: bool = True,
) -> Tenant:
    """Creates the owner (or finds them), the schema at head, the registry row and the owner's
    worker membership in one transaction: a failure at any step leaves nothing behind, so a
    retry simply works. The schema is a spare claimed from the pool when one is at head (the
    tenant takes its id; a rollback returns it), else it is created here; with
    `build_schema` False (signup: the API's runtime role cannot create schemas) no spare ready
    means `Unavailable` (503 `tenant_unavailable`, Retry-After) and nothing written. A taken
    slug is refused by the registry's unique constraint (`slug_taken`), which also settles two
    concurrent signups for one slug."""
    slug = validate_slug(slug)
    name = validate_workspace_name(name)
    with uow:
        owner_id = uow.users.id_by_email(owner_email)
        if owner_id is None:
            owner_id = uuid.uuid4()
            uow.users.add(owner_id, owner_email, owner_name, owner_password_hash)
        elif owner_password_hash is not None:
            raise Conflict("email_taken")
        # The schema first, so the registry row is written once, with the schema's version.
        spare = uow.schemas.claim_spare()
        if spare is not None:
            tenant_id, version = spare.id, spare.revision
        elif not build_schema:
            raise Unavailable(
                "tenant_unavailable",
                "no workspace is ready yet: retry in a few seconds",
                retry_after_s=NO_WORKSPACE_RETRY_AFTER_S,
            )
        else:
            tenant_id = uuid.uuid4()
            version = uow.schemas.create(schema_name_for(tenant_id))
        schema_name = schema_name_for(tenant_id)
        tenant = Tenant(
            id=tenant_id,
            slug=slug,
            name=name,
            schema_name=schema_name,
            status=TenantStatus.ACTIVE,
            plan=Plan.TRIAL,
            trial_ends_at=now + timedelta(days=trial_days),
            created_at=now,
            schema_version=version,
        )
        uow.tenants.add(tenant)
        uow.memberships.add(user_id=owner_id, tenant_id=tenant.id, role=Role.WORKER)
        uow.audit.record(
            "tenant.provisioned",
            tenant_id=tenant.id,
            actor_user_id=actor_user_id,
            target_type="tenant",
            target_id=str(tenant.id),
            request_id=request_id,
            metadata={"slug": slug, "schema_version": version},
        )
        uow.commit()
    return tenant


def request_spare_refill(*, jobs: JobQueue) -> bool:
    """Asks the worker to top the pool of spare workspaces up (`refill_spares`). The queueing
    lock keeps at most one such job waiting, however many signups ask. Never raises: a refill
    that cannot be asked for fails no signup (the worker's periodic refill comes anyway);
    False then, and a warning in the log."""
    try:
        jobs.enqueue(REFILL_SPARES_TASK, queue=PROVISIONING_QUEUE, queueing_lock=REFILL_SPARES_TASK)
    except Exception as error:  # noqa: BLE001 - whatever the queue's failure, the signup stands
        log.warning("spare refill not enqueued: %s", type(error).__name__)
        return False
    return True


def list_tenants(*, status: TenantStatus | None, uow: RegistryUnitOfWork) -> list[Tenant]:
    """Lists the registry, oldest first."""
    with uow:
        return uow.tenants.list(status)


def disable_tenant(
    *,
    slug: str,
    reason: DisableReason,
    now: datetime,
    uow: RegistryUnitOfWork,
    actor_user_id: uuid.UUID | None = None,
) -> Tenant:
    """Disables a tenant (blocked for everyone) and audits it; disabling twice changes nothing."""
    return _change_status(
        slug=slug,
        target=TenantStatus.DISABLED,
        disabled_at=now,
        event="tenant.disabled",
        metadata={"reason": reason.value},
        uow=uow,
        actor_user_id=actor_user_id,
    )


def enable_tenant(*, slug: str, uow: RegistryUnitOfWork, actor_user_id: uuid.UUID | None = None) -> Tenant:
    """Re-enables a disabled tenant and audits it; a deleted or scheduled one is refused."""
    return _change_status(
        slug=slug,
        target=TenantStatus.ACTIVE,
        disabled_at=None,
        event="tenant.enabled",
        metadata={},
        uow=uow,
        actor_user_id=actor_user_id,
    )


MAX_TRIAL_EXTENSION_DAYS = 365


def extend_trial(
    *, slug: str, days: int, now: datetime, uow: RegistryUnitOfWork, actor_user_id: uuid.UUID | None = None
) -> Tenant:
    """Moves the tenant's trial end `days` later, counted from now when the trial has already
    ended (a read-only workspace becomes active again), and audits it. A workspace being
    deleted is refused: its access is decided by the deletion, not the trial."""
    if not 1 <= days <= MAX_TRIAL_EXTENSION_DAYS:
        rule = f"must be 1 to {MAX_TRIAL_EXTENSION_DAYS}"
        raise Invalid({"days": [rule]}, f"days {rule}")
    with uow:
        tenant = uow.tenants.lock_by_slug(slug)
        if tenant is None:
            raise NotFound("not_found", f"no tenant {slug!r}")
        if tenant.status in (TenantStatus.DELETION_SCHEDULED, TenantStatus.DELETED):
            raise Conflict("tenant_deleted", f"{slug} is being deleted")
        trial_ends_at = max(now, tenant.trial_ends_at or now) + timedelta(days=days)
        uow.tenants.set_trial_end(tenant.id, trial_ends_at)
        uow.audit.record(
            "tenant.trial_extended",
            tenant_id=tenant.id,
            actor_user_id=actor_user_id,
            actor_role="operator",
            target_type="tenant",
            target_id=str(tenant.id),
            metadata={"slug": tenant.slug, "days": days},
        )
        uow.commit()
    return Tenant(**{**tenant.__dict__, "trial_ends_at": trial_ends_at})


def _change_status(
    *,
    slug: str,
    target: TenantStatus,
    disabled_at: datetime | None,
    event: str,
    metadata: dict,
    uow: RegistryUnitOfWork,
    actor_user_id: uuid.UUID | None,
) -> Tenant:
    with uow:
        tenant = uow.tenants.lock_by_slug(slug)
        if tenant is None:
            raise NotFound("not_found", f"no tenant {slug!r}")
        if not check_operator_status_change(tenant.status, target):
            return tenant
        uow.tenants.set_status(tenant.id, target, disabled_at=disabled_at)
        uow.audit.record(
            event,
            tenant_id=tenant.id,
            actor_user_id=actor_user_id,
            actor_role="operator",
            target_type="tenant",
            target_id=str(tenant.id),
            metadata={"slug": tenant.slug, **metadata},
        )
        uow.commit()
    return Tenant(**{**tenant.__dict__, "status": target, "disabled_at": disabled_at})


@dataclass(frozen=True)
class Downgrade:
    tenant: Tenant
    from_version: str | None
    version: str | None


def downgrade_tenant(
    *, slug: str, revision: str, uow: RegistryUnitOfWork, actor_user_id: uuid.UUID | None = None
) -> Downgrade:
    """Downgrades one tenant's schema to `revision` and keeps the registry true: its
    `schema_version` becomes the schema's new revision (so the next `tenants migrate` upgrades
    it again), its grants are re-applied, the change is audited. Under the tenant's migration
    lock: a concurrent `tenants migrate` of the same tenant is refused, not interleaved."""
    with uow:
        tenant = uow.tenants.lock_by_slug(slug)
        if tenant is None:
            raise NotFound("not_found", f"no tenant {slug!r}")
        if tenant.status in (TenantStatus.DELETED, TenantStatus.PROVISIONING):
            raise Conflict("conflict", f"tenant {slug!r} is {tenant.status.value}: nothing to downgrade")
        if not uow.tenants.try_lock(tenant.id):
            raise Conflict("conflict", f"tenant {slug!r} is being migrated by another run; try again")
        change = uow.schemas.downgrade(tenant.schema_name, revision)
        uow.tenants.record_migration(tenant.id, change.version, None)
        uow.audit.record(
            "tenant.downgraded",
            tenant_id=tenant.id,
            actor_user_id=actor_user_id,
            actor_role="operator",
            target_type="tenant",
            target_id=str(tenant.id),
            metadata={
                "slug": tenant.slug,
                "from_version": change.from_version,
                "schema_version": change.version,
            },
        )
        uow.commit()
    downgraded = Tenant(**{**tenant.__dict__, "schema_version": change.version, "last_migration_error": None})
    return Downgrade(downgraded, change.from_version, change.version)


class MigrationOutcome(enum.StrEnum):
    MIGRATED = "migrated"
    CURRENT = "current"  # already at head: nothing done
    BUSY = "busy"  # another migrate run holds the tenant's lock: it migrates it
    SKIPPED = "skipped"  # deleted since the plan was made
    FAILED = "failed"


@dataclass(frozen=True)
class MigrationResult:
    tenant_id: uuid.UUID
    slug: str
    outcome: MigrationOutcome
    from_version: str | None
    version: str | None
    seconds: float = 0.0
    error: str | None = None
    method: UpgradeMethod | None = None  # how a migrated tenant was upgraded

    @property
    def ok(self) -> bool:
        return self.outcome is not MigrationOutcome.FAILED


@dataclass(frozen=True)
class MigrationPlan:
    head: str
    fleet_size: int  # tenants with a schema (not deleted)
    pending: list[Tenant]  # not at head, or their last migration failed


def plan_migration(*, head: str, uow: RegistryUnitOfWork, slug: str | None = None) -> MigrationPlan:
    """Reads from the registry which tenants are behind `head` (or failed last time), without
    opening a single tenant schema: a run with nothing pending costs one query."""
    with uow:
        if slug is None:
            return MigrationPlan(head, uow.tenants.count_migratable(), uow.tenants.list_behind(head))
        tenant = uow.tenants.get_by_slug(slug)
    if tenant is None:
        raise NotFound("not_found", f"no tenant {slug!r}")
    if tenant.status in (TenantStatus.PROVISIONING, TenantStatus.DELETED):
        raise Conflict("tenant_deleted" if tenant.status is TenantStatus.DELETED else "tenant_provisioning")
    behind = tenant.schema_version != head or tenant.last_migration_error is not None
    return MigrationPlan(head, 1, [tenant] if behind else [])


def migrate_tenants(
    *,
    plan: MigrationPlan,
    uow_factory: Callable[[], RegistryUnitOfWork],
    jobs: int = 1,
    lock_timeout_ms: int | None = 5000,
) -> Iterator[MigrationResult]:
    """Migrates the planned tenants, each in its own transaction under its advisory lock, and
    yields one result per tenant as it ends; a failure is recorded on the tenant and the
    others go on. With `jobs` > 1 the tenants are shared by that many worker processes, each
    with its own connections: Alembic's operation proxies are process-global, so threads
    could not run two migrations at once. `uow_factory` must then be picklable."""
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    if jobs == 1:
        for tenant in plan.pending:
            yield _migrate_one(tenant, plan.head, uow_factory, lock_timeout_ms)
        return
    workers = min(jobs, len(plan.pending)) or 1
    lifeline = ParentLifeline()  # the workers die with this process, even by SIGKILL
    pool = ProcessPoolExecutor(
        max_workers=workers,
        # Workers fork from a clean server process, never from this one: no socket of our
        # connections is ever shared with a worker.
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=watch_parent,
        initargs=(lifeline.worker_end,),
    )
    try:
        futures = [
            pool.submit(_migrate_batch, batch, plan.head, uow_factory, lock_timeout_ms)
            for batch in batches(plan.pending, workers)
        ]
        for future in as_completed(futures):
            yield from future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        lifeline.close()


MAX_BATCH = 20


def batches(tenants: list[Tenant], workers: int) -> list[list[Tenant]]:
    """The tenants, in order, in batches for the workers: one task per tenant cost the
    processes about as much as a tenant's own statements (pickling, queues); at least four
    batches per worker (when there are enough tenants) still balance the load."""
    size = max(1, min(MAX_BATCH, len(tenants) // (workers * 4)))
    return [tenants[i : i + size] for i in range(0, len(tenants), size)]


def _migrate_batch(
    tenants: list[Tenant],
    head: str,
    uow_factory: Callable[[], RegistryUnitOfWork],
    lock_timeout_ms: int | None,
) -> list[MigrationResult]:
    return [_migrate_one(tenant, head, uow_factory, lock_timeout_ms) for tenant in tenants]


def _migrate_one(
    tenant: Tenant,
    head: str,
    uow_factory: Callable[[], RegistryUnitOfWork],
    lock_timeout_ms: int | None,
) -> MigrationResult:
    started = time.perf_counter()

    def result(
        outcome: MigrationOutcome,
        version: str | None,
        error: str | None = None,
        method: UpgradeMethod | None = None,
    ) -> MigrationResult:
        seconds = time.perf_counter() - started
        return MigrationResult(
            tenant.id, tenant.slug, outcome, tenant.schema_version, version, seconds, error, method
        )

    try:
        with uow_factory() as uow:
            if not uow.tenants.try_lock(tenant.id):
                return result(MigrationOutcome.BUSY, tenant.schema_version)
            # Re-read under the lock: a concurrent run may have finished this tenant already.
            current = uow.tenants.get(tenant.id)
            if current is None or current.status in (TenantStatus.DELETED, TenantStatus.PROVISIONING):
                return result(MigrationOutcome.SKIPPED, tenant.schema_version)
            if current.schema_version == head and current.last_migration_error is None:
                return result(MigrationOutcome.CURRENT, head)
            try:
                upgrade = uow.schemas.migrate(
                    current.schema_name, from_version=current.schema_version, lock_timeout_ms=lock_timeout_ms
                )
            except Exception as error:  # noqa: BLE001 - one tenant's failure must not stop the fleet
                # The schema change was rolled back to its savepoint; the lock is still ours,
                # so no concurrent run can interleave between the failure and its record.
                uow.tenants.record_migration(tenant.id, None, describe(error))
                uow.commit()
                return result(MigrationOutcome.FAILED, current.schema_version, describe(error))
            uow.tenants.record_migration(tenant.id, upgrade.version, None)
            uow.commit()
            return result(MigrationOutcome.MIGRATED, upgrade.version, method=upgrade.method)
    except Exception as error:  # noqa: BLE001 - e.g. the connection dropped: report, go on
        _record_failure(tenant, uow_factory, describe(error))
        return result(MigrationOutcome.FAILED, tenant.schema_version, describe(error))


def _record_failure(tenant: Tenant, uow_factory: Callable[[], RegistryUnitOfWork], message: str) -> None:
    """Best effort, on a fresh connection, and only while nobody else holds the tenant."""
    try:
        with uow_factory() as uow:
            if uow.tenants.try_lock(tenant.id):
                uow.tenants.record_migration(tenant.id, None, message)
                uow.commit()
    except Exception:  # noqa: BLE001, S110 - the summary still reports the failure
        pass


def describe(error: Exception) -> str:
    """One line, bounded, for the registry and the summary (no SQL text, no parameters)."""
    first_line = (str(error).splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}"[:500]
