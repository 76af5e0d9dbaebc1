"""Access tokens of real sessions for tests that set up members without logging in: every
access token names a session (`sid`), and the API refuses one whose session is not an active
refresh family of that user in that tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

REFRESH_TTL_S = 3600


def session_token(runtime, *, user_id: uuid.UUID, tenant_id: uuid.UUID) -> str:
    """Start a session for the user's membership of the tenant, as login does; its access token."""
    from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
    from backend.service.identity.sessions import start_session

    with SqlRegistryUnitOfWork(runtime.owner_engine) as uow:
        membership = uow.memberships.get(user_id, tenant_id)
        assert membership is not None, "a session needs a membership"
        pair = start_session(
            uow=uow,
            tokens=runtime.tokens,
            membership=membership,
            now=datetime.now(UTC),
            refresh_ttl_s=REFRESH_TTL_S,
        )
        uow.commit()
    return pair.access_token
