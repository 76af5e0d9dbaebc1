"""Per-request identity and tenant resolution.

The tenant comes only from the verified token's `tenant_id` claim and is checked against the
registry (membership still there, same role and client link, session not revoked, tenant
state). The registry's answer is cached per process, keyed by (user, tenant, session):
- while the process listens for the registry's `access_changed` notifications
  (backend/infrastructure/access_events.py), an entry lives up to ACCESS_CACHE_TTL_S and is
  dropped as soon as a change to its tenant, membership, user or session commits, whoever
  made it: a removed membership, a disabled tenant or a logout takes effect at once;
- while it does not (starting up, connection lost), entries older than FALLBACK_TTL_S are
  not used, so revocation still takes effect within that bound.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

from cachetools import TTLCache
from flask import g, request

from backend.api.context import runtime
from backend.api.metrics import ACCESS_CACHE_LOOKUPS
from backend.domain.errors import Forbidden, Unauthenticated
from backend.domain.identity import AccessRecord, Principal
from backend.domain.tenants import TenantStatus
from backend.infrastructure.access_events import AccessChange, AccessChangeListener, listener_conninfo
from backend.infrastructure.sql.identity import load_access, tenant_status

# A backstop only: notifications evict what changed. Long enough that every active session of
# a busy fleet stays warm between its requests (benchmarks: 1,000 tenants).
ACCESS_CACHE_TTL_S = 300.0
FALLBACK_TTL_S = 2.0
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MISSING = object()
AccessKey = tuple[uuid.UUID, uuid.UUID, uuid.UUID | None]
_HITS, _MISSES = ACCESS_CACHE_LOOKUPS.labels("hit"), ACCESS_CACHE_LOOKUPS.labels("miss")


class AccessCache:
    """The per-process cache of registry answers, invalidated by notifications."""

    def __init__(self, maxsize: int = 10_000, listener_factory=None) -> None:
        self._listener_factory = listener_factory or _database_listener
        self._entries: TTLCache = TTLCache(maxsize=maxsize, ttl=ACCESS_CACHE_TTL_S)
        self._lock = threading.Lock()
        # Bumped by every invalidation: an answer read before a change committed must not be
        # stored after that change's notification was handled.
        self._generation = 0
        self._listener: AccessChangeListener | None = None
        self._listener_pid: int | None = None

    def get(self, key: AccessKey, load) -> AccessRecord | None:
        max_age = ACCESS_CACHE_TTL_S if self._listening() else FALLBACK_TTL_S
        with self._lock:
            # One lookup: between `key in cache` and `cache[key]` the entry can expire, and
            # the second step raised KeyError (a 500 found by the API fuzzer).
            cached = self._entries.get(key, _MISSING)
            generation = self._generation
        if cached is not _MISSING and time.monotonic() - cached[1] <= max_age:
            _HITS.inc()
            return cached[0]
        _MISSES.inc()
        loaded_at = time.monotonic()
        record = load()
        with self._lock:
            if self._generation == generation:
                self._entries[key] = (record, loaded_at)
        return record

    def forget(self, change: AccessChange | None = None) -> None:
        """Drop the entries a change makes stale (all of them for None)."""
        with self._lock:
            self._generation += 1
            if change is None or change == AccessChange():
                self._entries.clear()
                return
            for key in list(self._entries):
                user_id, tenant_id, session_id = key
                if (
                    change.user_id in (None, user_id)
                    and change.tenant_id in (None, tenant_id)
                    and change.session_id in (None, session_id)
                ):
                    del self._entries[key]

    def _listening(self) -> bool:
        # Started lazily in the serving process: a gunicorn worker forked from a preloading
        # master must not inherit a thread (it would not exist) or a connection (shared socket).
        if self._listener_pid != os.getpid():
            with self._lock:
                if self._listener_pid != os.getpid():
                    self._listener = self._listener_factory(self)
                    self._listener.start()
                    self._listener_pid = os.getpid()
        return self._listener is not None and self._listener.healthy

    def wait_listening(self, timeout: float) -> bool:
        """Start the listener if needed and wait until it delivers changes (tests, warm-up)."""
        self._listening()
        return self._listener.wait_healthy(timeout)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def stop_listening(self) -> None:
        if self._listener is not None and self._listener_pid == os.getpid():
            self._listener.stop()
        self._listener, self._listener_pid = None, None


def _database_listener(cache: AccessCache) -> AccessChangeListener:
    return AccessChangeListener(
        listener_conninfo(runtime().settings.listener_database_url),
        on_change=cache.forget,
        on_reset=cache.forget,
    )


access_cache = AccessCache()


def bearer_token() -> str:
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthenticated("missing_token")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("invalid_token")
    return value.strip()


def cached_access(user_id: uuid.UUID, tenant_id: uuid.UUID, session_id: uuid.UUID) -> AccessRecord | None:
    return access_cache.get(
        (user_id, tenant_id, session_id),
        lambda: load_access(runtime().engine, user_id, tenant_id, session_id),
    )


def forget_access(user_id: uuid.UUID | None = None, tenant_id: uuid.UUID | None = None) -> None:
    """Drop cached registry answers at once in this process (the notification follows)."""
    access_cache.forget(AccessChange(user_id=user_id, tenant_id=tenant_id))


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
