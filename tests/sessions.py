"""Access tokens of real sessions for tests that set up members without logging in
(backend/cli/identity.member_session_token, shared with the benchmarks)."""

from __future__ import annotations

import uuid

REFRESH_TTL_S = 3600


def session_token(runtime, *, user_id: uuid.UUID, tenant_id: uuid.UUID) -> str:
    from backend.cli.identity import member_session_token

    return member_session_token(runtime, user_id=user_id, tenant_id=tenant_id, refresh_ttl_s=REFRESH_TTL_S)
