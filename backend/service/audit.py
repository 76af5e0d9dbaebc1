"""Audit trail use cases: reading a tenant's trail, recording refused access."""

from __future__ import annotations

import uuid

from backend.domain import audit as events
from backend.domain.audit import AuditEvent
from backend.domain.lifecycle import Actor
from backend.service.ports import RegistryUnitOfWork, UnitOfWork


def record_tenant_event(uow: UnitOfWork, event: str, tenant_id: uuid.UUID, actor: Actor, **fields) -> None:
    """Records a lifecycle event about a tenant (the target), by an operator or the owner."""
    uow.audit.record(
        event,
        tenant_id=tenant_id,
        actor_user_id=actor.user_id,
        actor_role=actor.role,
        target_type="tenant",
        target_id=str(tenant_id),
        request_id=actor.request_id,
        **fields,
    )


def list_events(
    *, tenant_id: uuid.UUID, page: int, page_size: int, uow: RegistryUnitOfWork
) -> tuple[list[AuditEvent], int]:
    """Lists one page of the tenant's audit trail, newest first, with the total count."""
    with uow:
        return uow.audit.list_page(tenant_id=tenant_id, offset=(page - 1) * page_size, limit=page_size)


def record_access_denied(
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    code: str,
    route: str,
    method: str,
    request_id: str | None,
    uow: RegistryUnitOfWork,
) -> None:
    """Records that a request was refused by role or access mode (route template only)."""
    with uow:
        uow.audit.record(
            events.ACCESS_DENIED,
            tenant_id=tenant_id,
            actor_user_id=user_id,
            actor_role=role,
            request_id=request_id,
            outcome=events.DENIED,
            metadata={"code": code, "route": route, "method": method},
        )
        uow.commit()
