"""The registry's answers to "may this session open this workspace", cached in the serving
process, keyed by (user, tenant, session):
- while the cache listens for the registry's `access_changed` notifications
  (backend/infrastructure/access_events.py), an entry lives up to ACCESS_CACHE_TTL_S and is
  dropped as soon as a change to its tenant, membership, user or session commits, whoever
  made it: a removed membership, a disabled tenant or a logout takes effect at once;
- while it does not (starting up, connection lost), entries older than FALLBACK_TTL_S are
  not used, so revocation still takes effect within that bound.
One per app (on its Runtime), listening on that app's database: tests run apps on several
databases in one process, and a cache listening on another database would miss every change.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from cachetools import TTLCache
from prometheus_client import Counter

from backend.domain.identity import AccessRecord
from backend.infrastructure.access_events import AccessChange, AccessChangeListener, listener_conninfo

# A backstop only: notifications evict what changed. Long enough that every active session of
# a busy fleet stays warm between its requests (benchmarks: 1,000 tenants).
ACCESS_CACHE_TTL_S = 300.0
FALLBACK_TTL_S = 2.0
_MISSING = object()
AccessKey = tuple[uuid.UUID, uuid.UUID, uuid.UUID | None]
ACCESS_CACHE_LOOKUPS = Counter(
    "saas_access_cache_lookups_total",
    "Access answers from the cache (hit) or the registry (miss)",
    ["result"],
)
_HITS, _MISSES = ACCESS_CACHE_LOOKUPS.labels("hit"), ACCESS_CACHE_LOOKUPS.labels("miss")


class AccessCache:
    """One app's cache of registry answers in this process, invalidated by notifications."""

    def __init__(self, listener_factory, maxsize: int = 10_000) -> None:
        self._listener_factory = listener_factory
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


def listening_on(database_url: str) -> AccessCache:
    """A cache whose listener (started in the serving process) hears `database_url`'s changes."""
    conninfo = listener_conninfo(database_url)
    return AccessCache(
        lambda cache: AccessChangeListener(conninfo, on_change=cache.forget, on_reset=cache.forget)
    )
