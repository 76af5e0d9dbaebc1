"""Tenant lifecycle use cases: provision, list, migrate."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from backend.domain.errors import Conflict
from backend.domain.identity import Role
from backend.domain.tenants import (
    Plan,
    Tenant,
    TenantStatus,
    schema_name_for,
    validate_slug,
    validate_workspace_name,
)
from backend.service.ports import RegistryUnitOfWork


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
) -> Tenant:
    """Creates the registry row, the schema at head and the owner's worker membership, in one
    transaction: a failure at any step leaves nothing behind, so a retry simply works."""
    slug = validate_slug(slug)
    name = validate_workspace_name(name)
    tenant_id = uuid.uuid4()
    with uow:
        if uow.tenants.get_by_slug(slug) is not None:
            raise Conflict("slug_taken")
        owner_id = uow.users.id_by_email(owner_email)
        if owner_id is None:
            owner_id = uuid.uuid4()
            uow.users.add(owner_id, owner_email, owner_name, owner_password_hash)
        elif owner_password_hash is not None:
            raise Conflict("email_taken")
        tenant = Tenant(
            id=tenant_id,
            slug=slug,
            name=name,
            schema_name=schema_name_for(tenant_id),
            status=TenantStatus.ACTIVE,
            plan=Plan.TRIAL,
            trial_ends_at=now + timedelta(days=trial_days),
            created_at=now,
        )
        uow.tenants.add(tenant)
        version = uow.schemas.create(tenant.schema_name)
        uow.tenants.record_migration(tenant.id, version, None)
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
    return Tenant(**{**tenant.__dict__, "schema_version": version})


def list_tenants(*, status: TenantStatus | None, uow: RegistryUnitOfWork) -> list[Tenant]:
    """Lists the registry, oldest first."""
    with uow:
        return uow.tenants.list(status)


@dataclass(frozen=True)
class MigrationResult:
    slug: str
    ok: bool
    version: str | None
    error: str | None = None


def migrate_tenants(
    *,
    uow_factory: Callable[[], RegistryUnitOfWork],
    head: str,
    slug: str | None = None,
) -> Iterator[MigrationResult]:
    """Migrates every tenant (or one) to head, each in its own transaction; a failure is
    recorded on the tenant and the others go on. Tenants the registry already shows at head
    are skipped without opening their schema."""
    with uow_factory() as uow:
        tenants = [t for t in uow.tenants.list() if t.status is not TenantStatus.DELETED]
    if slug is not None:
        tenants = [t for t in tenants if t.slug == slug]
    for tenant in tenants:
        if tenant.schema_version == head and tenant.last_migration_error is None:
            yield MigrationResult(tenant.slug, True, head)
            continue
        yield _migrate_one(tenant, uow_factory)


def _migrate_one(tenant: Tenant, uow_factory: Callable[[], RegistryUnitOfWork]) -> MigrationResult:
    try:
        with uow_factory() as uow:
            version = uow.schemas.migrate(tenant.schema_name)
            uow.tenants.record_migration(tenant.id, version, None)
            uow.commit()
        return MigrationResult(tenant.slug, True, version)
    except Exception as error:  # noqa: BLE001 - isolate one tenant's failure from the fleet
        message = f"{type(error).__name__}: {error}".splitlines()[0][:500]
        with uow_factory() as uow:
            uow.tenants.record_migration(tenant.id, None, message)
            uow.commit()
        return MigrationResult(tenant.slug, False, tenant.schema_version, message)
