"""The caller's own sessions (one per login, i.e. per refresh-token family): list them, end
one, end all but this one. Always scoped to the caller's user and workspace: another user's
or another workspace's session is "not found", never ended."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from backend.domain import audit as events
from backend.domain.errors import NotFound
from backend.domain.identity import Role, SessionInfo
from backend.service.ports import RegistryUnitOfWork

# A browser's User-Agent can be long; what is shown (and stored) is cut here.
USER_AGENT_MAX = 256


def clip_user_agent(value: str | None) -> str | None:
    value = (value or "").strip()
    return value[:USER_AGENT_MAX] or None


def list_sessions(
    *,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    current: uuid.UUID | None,
    now: datetime,
    uow: RegistryUnitOfWork,
) -> list[SessionInfo]:
    with uow:
        sessions = uow.refresh_tokens.sessions_of(user_id, tenant_id, now)
    return [replace(s, current=s.id == current) for s in sessions]


def end_session(
    *,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    role: Role,
    session_id: uuid.UUID,
    now: datetime,
    uow: RegistryUnitOfWork,
    request_id: str | None = None,
) -> None:
    """Revokes one of the caller's sessions: its refresh tokens fail and, through the
    revocation check on `sid`, its access tokens too."""
    with uow:
        if not uow.refresh_tokens.revoke_user_family(user_id, tenant_id, session_id, now):
            raise NotFound("not_found", "no such session")
        _record(uow, user_id, tenant_id, role, request_id, {"reason": "one"}, str(session_id))
        uow.commit()


def end_other_sessions(
    *,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    role: Role,
    current: uuid.UUID | None,
    now: datetime,
    uow: RegistryUnitOfWork,
    request_id: str | None = None,
) -> int:
    """Revokes every session of the caller in this workspace except the one making the request."""
    with uow:
        ended = uow.refresh_tokens.revoke_others(user_id, tenant_id, current, now)
        _record(uow, user_id, tenant_id, role, request_id, {"reason": "others", "count": ended}, None)
        uow.commit()
    return ended


def _record(uow, user_id, tenant_id, role: Role, request_id, metadata: dict, target: str | None) -> None:
    uow.audit.record(
        events.SESSION_ENDED,
        tenant_id=tenant_id,
        actor_user_id=user_id,
        actor_role=role.value,
        target_type="session" if target else None,
        target_id=target,
        request_id=request_id,
        metadata=metadata,
    )
