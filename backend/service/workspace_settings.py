"""The workspace's own settings, chosen by its workers: whether its workers must log in with
a second factor (docs/security.md, "Second factor").

Switching the requirement on needs the caller's own factor to be on already: a worker cannot
lock themselves out of the workspace they are configuring. Workers without a factor are then
held at the enrolment routes (domain/access.py); their sessions stay, so that they can enrol
without logging in again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from backend.domain import audit as events
from backend.domain.errors import Conflict, NotFound
from backend.domain.identity import Role
from backend.service.ports import RegistryUnitOfWork


@dataclass(frozen=True)
class WorkspaceSettings:
    mfa_required_for_workers: bool


def get_settings(*, tenant_id: uuid.UUID, uow: RegistryUnitOfWork) -> WorkspaceSettings:
    """The workspace's settings."""
    with uow:
        required = uow.tenants.mfa_required(tenant_id)
    if required is None:
        raise NotFound()
    return WorkspaceSettings(mfa_required_for_workers=required)


def update_settings(
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    role: Role,
    mfa_required_for_workers: bool | None,
    uow: RegistryUnitOfWork,
    request_id: str | None = None,
) -> WorkspaceSettings:
    """Changes the settings given (None: unchanged); a change is recorded in the workspace's
    trail, a request that changes nothing is not. 409 `mfa_not_enabled` when the caller turns
    the requirement on without a second factor of their own."""
    with uow:
        current = uow.tenants.mfa_required(tenant_id, for_update=True)
        if current is None:
            raise NotFound()
        wanted = current if mfa_required_for_workers is None else mfa_required_for_workers
        if wanted and not current:
            factor = uow.mfa.get(user_id)
            if factor is None or factor.enabled_at is None:
                raise Conflict("mfa_not_enabled", "turn on your own second factor before requiring one")
        if wanted != current:
            uow.tenants.set_mfa_required(tenant_id, wanted)
            uow.audit.record(
                events.MFA_POLICY_CHANGED,
                tenant_id=tenant_id,
                actor_user_id=user_id,
                actor_role=role.value,
                target_type="tenant",
                target_id=str(tenant_id),
                request_id=request_id,
                metadata={"required": wanted},
            )
            uow.commit()
    return WorkspaceSettings(mfa_required_for_workers=wanted)
