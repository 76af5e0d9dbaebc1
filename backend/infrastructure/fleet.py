"""What the worker processes of a fleet migration need: a picklable unit-of-work factory.

Workers are processes, not threads: Alembic's `op` and `context` are process-global proxies,
so two migrations running in threads of one process would run each other's operations on
the wrong connection. A worker unpickles this factory, builds its own engine once (its own
connections), and runs the same migration tree as the process that planned the run.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.util import LRUCache

from backend.core.config import Settings
from backend.core.db import create_db_engine
from backend.infrastructure import migrations
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork

# A connection that has opened many schemas carries their catalog entries in its backend's
# caches (relcache, catcache): a worker replaces its connection after this many tenants.
CHECKOUTS_PER_CONNECTION = 200
COMPILED_CACHE_SIZE = 64

_engines: dict[tuple[int, str], Engine] = {}


def preload_workers() -> None:
    """Let the fork server import what workers run, once, so each worker starts in
    milliseconds instead of importing SQLAlchemy and Alembic itself. Call before a run."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["backend.infrastructure.fleet", "backend.service.tenants"]
    )


@dataclass(frozen=True)
class RegistryUowFactory:
    """Owner-role units of work for one migrate run, in this process or a worker process."""

    url: str
    runtime_role: str | None
    tenant_tree: str  # the migration tree the run was planned against
    # The planning process's Settings.citus, not the worker's environment: on a Citus
    # coordinator the steps must take the statement-by-statement chain (docs/scale-out.md).
    citus: bool = False

    @classmethod
    def for_current_tree(
        cls, url: str, runtime_role: str | None, *, citus: bool = False
    ) -> RegistryUowFactory:
        return cls(url, runtime_role, str(migrations.script_location("tenant")), citus)

    def __call__(self) -> SqlRegistryUnitOfWork:
        if migrations.script_location("tenant") != Path(self.tenant_tree):
            migrations.use_script_location("tenant", Path(self.tenant_tree))
        return SqlRegistryUnitOfWork(engine_for(self.url, citus=self.citus), self.runtime_role)


def engine_for(url: str, *, citus: bool = False) -> Engine:
    """One small engine per process and URL (a forked or spawned worker never reuses its
    parent's connections)."""
    key = (os.getpid(), url)
    if key not in _engines:
        _engines[key] = _recycling_engine(url, citus)
    return _engines[key]


def dispose_engines() -> None:
    for (pid, url), engine in list(_engines.items()):
        if pid == os.getpid():
            engine.dispose()
            del _engines[(pid, url)]


def _recycling_engine(url: str, citus: bool) -> Engine:
    # No ping before every tenant: a connection that died fails that one tenant (recorded,
    # retried by the next run) and is discarded by the pool.
    engine = create_db_engine(
        url, Settings(citus=citus), application_name="saas-migrate", pool_size=1, pre_ping=False
    )

    @event.listens_for(engine, "checkout")
    def _recycle_worn(dbapi_connection, connection_record, connection_proxy):
        uses = connection_record.info["checkouts"] = connection_record.info.get("checkouts", 0) + 1
        if uses > CHECKOUTS_PER_CONNECTION:
            raise DisconnectionError("recycled after serving many tenants")

    # Alembic's statements name each tenant's version table, so every tenant adds entries to
    # SQLAlchemy's compiled cache (500 by default) that are never reused: a small cache keeps
    # a worker's memory flat; the registry statements, reused for every tenant, stay in it.
    return engine.execution_options(compiled_cache=LRUCache(COMPILED_CACHE_SIZE))
