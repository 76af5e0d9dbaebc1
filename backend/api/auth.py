"""Per-request identity and tenant resolution.

The tenant comes only from the verified token's `tenant_id` claim and is checked against the
registry on every request (membership still there, same role and client link, session not
revoked): a removed membership, a disabled tenant or a logout takes effect within the cache
TTL (2 s), not at token expiry.
"""

from __future__ import annotations

import re
import threading
import uuid

from cachetools import TTLCache
from flask import g, request

from backend.api.context import runtime
from backend.domain.errors import Unauthenticated
from backend.domain.identity import AccessRecord, Principal
from backend.infrastructure.sql.identity import load_access

ACCESS_CACHE_TTL_S = 2.0
_cache: TTLCache = TTLCache(maxsize=10_000, ttl=ACCESS_CACHE_TTL_S)
_cache_lock = threading.Lock()
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MISSING = object()


def bearer_token() -> str:
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthenticated("missing_token")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("invalid_token")
    return value.strip()


def cached_access(
    user_id: uuid.UUID, tenant_id: uuid.UUID, session_id: uuid.UUID | None = None
) -> AccessRecord | None:
    key = (user_id, tenant_id, session_id)
    with _cache_lock:
        # One lookup: between `key in _cache` and `_cache[key]` the entry can expire, and the
        # second step raised KeyError (a 500 found by the API fuzzer, tests/integration/proof).
        cached = _cache.get(key, _MISSING)
    if cached is not _MISSING:
        return cached
    record = load_access(runtime().engine, user_id, tenant_id, session_id)
    with _cache_lock:
        _cache[key] = record
    return record


def forget_access(user_id: uuid.UUID | None = None, tenant_id: uuid.UUID | None = None) -> None:
    """Drop cached registry answers (after a membership or tenant change in this process)."""
    with _cache_lock:
        for key in list(_cache):
            if user_id in (None, key[0]) and tenant_id in (None, key[1]):
                del _cache[key]


def authenticate() -> Principal:
    claims = runtime().tokens.verify(bearer_token())
    access = cached_access(claims.user_id, claims.tenant_id, claims.session_id)
    if (
        access is None
        or access.session_revoked
        or access.role.value != claims.role
        or access.client_id != claims.client_id
    ):
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


def request_id() -> str | None:
    """The request id set by the logging middleware, or a well-formed X-Request-ID header."""
    value = g.get("request_id") or request.headers.get("X-Request-ID")
    return value if isinstance(value, str) and REQUEST_ID_RE.fullmatch(value) else None
