"""Listen for registry changes that invalidate cached access answers.

Triggers on shared.tenants, memberships, users and refresh_tokens (shared revision 0004)
send `pg_notify('access_changed', 'tenant:<id>' | 'user:<id>' | 'member:<user>:<tenant>' |
'session:<family id>')`, delivered when the writing transaction commits. One daemon thread
per process holds a dedicated connection (not one from the request pool) and hands each
message to a callback. Whenever the connection is lost, messages may have been missed: the
thread reports `healthy = False` at once and calls `on_reset` when it is listening again, so
the cache can fall back to a short TTL meanwhile and start clean afterwards.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from sqlalchemy.engine import make_url

from backend.core.db import sqlalchemy_url

log = logging.getLogger(__name__)

CHANNEL = "access_changed"
POLL_S = 1.0  # how often the thread looks at its stop flag while no message arrives
PROBE_S = 10.0  # a quiet connection is probed this often: a dead server must not look healthy
RETRY_S = (0.5, 1.0, 2.0, 5.0)  # reconnect back-off, the last value repeating
CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class AccessChange:
    """Which cached answers a message makes stale; None fields match everything."""

    user_id: uuid.UUID | None = None
    tenant_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None

    @classmethod
    def parse(cls, payload: str) -> AccessChange | None:
        kind, _, rest = payload.partition(":")
        try:
            if kind == "tenant":
                return cls(tenant_id=uuid.UUID(rest))
            if kind == "user":
                return cls(user_id=uuid.UUID(rest))
            if kind == "session":
                return cls(session_id=uuid.UUID(rest))
            if kind == "member":
                user, _, tenant = rest.partition(":")
                return cls(user_id=uuid.UUID(user), tenant_id=uuid.UUID(tenant))
        except ValueError:
            pass
        return None


def listener_conninfo(database_url: str) -> str:
    """A libpq URI for the listening connection, from the app's SQLAlchemy-style URL."""
    url = make_url(sqlalchemy_url(database_url)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class AccessChangeListener:
    def __init__(
        self,
        conninfo: str,
        on_change: Callable[[AccessChange | None], None],
        on_reset: Callable[[], None],
    ) -> None:
        self._conninfo = conninfo
        self._on_change = on_change  # None: a message we cannot read, drop everything
        self._on_reset = on_reset
        self._stop = threading.Event()
        self._healthy = threading.Event()
        self._thread = threading.Thread(target=self._run, name="access-listener", daemon=True)

    @property
    def healthy(self) -> bool:
        """True while listening: every change committed since is being delivered."""
        return self._healthy.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def wait_healthy(self, timeout: float) -> bool:
        return self._healthy.wait(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._listen()
                failures = 0
            except Exception as error:  # noqa: BLE001 - any failure: degrade, retry, never die
                self._healthy.clear()
                delay = RETRY_S[min(failures, len(RETRY_S) - 1)]
                log.warning(
                    "access listener disconnected",
                    extra={"error_class": type(error).__name__, "retry_in_s": delay},
                )
                self._stop.wait(delay)
                failures += 1

    def _listen(self) -> None:
        with psycopg.connect(
            self._conninfo,
            autocommit=True,
            application_name="saas-access-listener",
            connect_timeout=CONNECT_TIMEOUT_S,
        ) as connection:
            connection.execute(f"LISTEN {CHANNEL}")
            # Messages sent before LISTEN are lost: whatever was cached meanwhile is dropped.
            self._on_reset()
            self._healthy.set()
            probed = time.monotonic()
            try:
                while not self._stop.is_set():
                    for notify in connection.notifies(timeout=POLL_S):
                        self._on_change(AccessChange.parse(notify.payload))
                        if self._stop.is_set():
                            break
                    if time.monotonic() - probed > PROBE_S:
                        connection.execute("SELECT 1")
                        probed = time.monotonic()
            finally:
                self._healthy.clear()
