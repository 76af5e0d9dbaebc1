"""Per-request identity and tenant resolution.

The tenant comes only from the verified token's `tenant_id` claim and is checked against the
registry (membership still there, same role and client link, session not revoked, tenant
state). The registry's answer is cached (backend/api/access_cache.py): a change to the
tenant, membership, user or session takes effect at once.
"""

from __future__ import annotations

import re
import uuid

from flask import g, request

from backend.api.context import runtime
from backend.domain.errors import Forbidden, Unauthenticated
from backend.domain.identity import AccessRecord, Principal
from backend.domain.tenants import TenantStatus
from backend.infrastructure.access_events import AccessChange
from backend.infrastructure.sql.identity import load_access, tenant_status

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def bearer_token() -> str:
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthenticated("missing_token")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("invalid_token")
    return value.strip()


def cached_access(user_id: uuid.UUID, tenant_id: uuid.UUID, session_id: uuid.UUID) -> AccessRecord | None:
    return runtime().access_cache.get(
        (user_id, tenant_id, session_id),
        lambda: load_access(runtime().engine, user_id, tenant_id, session_id),
    )


def forget_access(user_id: uuid.UUID | None = None, tenant_id: uuid.UUID | None = None) -> None:
    """Drop cached registry answers at once in this process (the notification follows)."""
    runtime().access_cache.forget(AccessChange(user_id=user_id, tenant_id=tenant_id))


def authenticate() -> Principal:
    claims = runtime().tokens.verify(bearer_token())  # `sid` is required: no session, no access
    access = cached_access(claims.user_id, claims.tenant_id, claims.session_id)
    if access is None or not access.session_active:
        raise _refusal(claims.tenant_id, access)
    if access.role.value != claims.role or access.client_id != claims.client_id:
        raise Unauthenticated("invalid_token")
    principal = Principal(
        user_id=access.user_id,
        tenant_id=access.tenant_id,
        role=access.role,
        client_id=access.client_id,
        session_id=claims.session_id,
    )
    g.principal = principal
    g.access = access
    return principal


def _refusal(tenant_id: uuid.UUID, access: AccessRecord | None) -> Exception:
    """Why a signed token no longer opens its workspace. Deleting a workspace ends its
    sessions and, once purged, its memberships: its tokens say `tenant_deleted` (403), as the
    contract's access modes do. Anything else (logged out, revoked, removed) is
    `invalid_token`. The registry is asked again only on this path, never for a valid token."""
    if access is not None:
        status = access.tenant_status
        deleting = status in (TenantStatus.DELETION_SCHEDULED, TenantStatus.DELETED)
    else:
        deleting = tenant_status(runtime().engine, tenant_id) is TenantStatus.DELETED
    return Forbidden("tenant_deleted") if deleting else Unauthenticated("invalid_token")


def request_id() -> str | None:
    """The request id set by the logging middleware, or a well-formed X-Request-ID header."""
    value = g.get("request_id") or request.headers.get("X-Request-ID")
    return value if isinstance(value, str) and REQUEST_ID_RE.fullmatch(value) else None
