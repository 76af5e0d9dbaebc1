"""The pool of spare tenant schemas: built ahead of time, claimed by provisioning.

Creating a tenant schema costs PostgreSQL 1-3 ms per relation however the DDL arrives, and
the tenant tree has ~28 relations: too slow for a signup. So complete schemas are built
outside any request, each in its own transaction by `SqlSchemaManager.create` (the tenant
tree's SQL from base to head, step_scripts.py; the chain as fallback), with its tenant role
and grants, and its row in `shared.spare_schemas`. The provisioning transaction claims one
with its registry row (sql/spares.SqlSpareRegistry.claim; docs/architecture.md, "Spare
schemas").

Every step is one transaction, so a crash leaves a complete spare or nothing: a spare is
built with its row, dropped with its row, and claimed with the tenant's registry row.

Refills run in the worker process (a periodic task, and a job signups ask for) and in the
operator commands (`tenants migrate`, `tenants spares`), all as the owner role; never in the
API, which holds the runtime role only. They hold a transaction-level advisory lock while they
count and build (or drop) one spare, so two refills at once (a deploy and the worker, two
workers) build one after the other and never past the target, and cannot deadlock (one lock,
always first).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from backend.domain.tenants import SpareSchema, schema_name_for
from backend.infrastructure import migrations
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.infrastructure.sql.spares import SqlSpareRegistry

log = logging.getLogger(__name__)

POOL_LOCK = int.from_bytes(b"sparepol", "big", signed=True)


@dataclass(frozen=True)
class PoolStatus:
    head: str
    at_head: int  # claimable
    older: int  # built at an ancestor of the head: the next refill drops them
    other: int  # a revision this code does not know (a newer deploy's): left alone

    @property
    def total(self) -> int:
        return self.at_head + self.older + self.other


@dataclass(frozen=True)
class RefillResult:
    built: int
    dropped: int
    busy: bool  # another refill held the pool (and was left to finish the work)
    seconds: float


@functools.lru_cache(maxsize=8)
def _older_revisions(location: str, head: str) -> frozenset[str]:
    script = migrations.script_directory("tenant")
    return frozenset(r.revision for r in script.iterate_revisions(head, "base") if r.revision != head)


def older_revisions(head: str) -> frozenset[str]:
    """Revisions below `head` in the tenant tree: spares built there are stale."""
    return _older_revisions(str(migrations.script_location("tenant")), head)


class SparePool:
    """Builds and drops spares as the owner role; `size` is the target (SPARE_SCHEMAS)."""

    def __init__(self, engine: Engine, runtime_role: str | None, size: int) -> None:
        self.engine = engine
        self._runtime_role = runtime_role
        self.size = size

    def status(self) -> PoolStatus:
        head = migrations.head_revision("tenant")
        older = older_revisions(head)
        with self.engine.connect() as connection:
            counts = SqlSpareRegistry(connection).count_by_revision()
        return PoolStatus(
            head=head,
            at_head=counts[head],
            older=sum(n for revision, n in counts.items() if revision in older),
            other=sum(n for revision, n in counts.items() if revision != head and revision not in older),
        )

    def refill(
        self,
        *,
        target: int | None = None,
        shrink: bool = False,
        drop_stale: bool = False,
        wait: bool = True,
        progress: Callable[[], None] | None = None,
    ) -> RefillResult:
        """Drop the spares built at an older head (with `drop_stale`, at any revision but the
        head: also those of a revision this code does not know), then build spares at head
        until `target` (default: the pool size) are ready; with `shrink`, drop those beyond
        it. `wait`: queue behind a refill in progress; otherwise leave the work to it.
        `progress` is called after each spare built or dropped.

        Bounded: at most `target` spares built and as many dropped as there were spares when
        it started, so spares claimed meanwhile are left to the next refill."""
        target = self.size if target is None else target
        head = migrations.head_revision("tenant")
        stale_revisions = None if drop_stale else set(older_revisions(head))
        started = time.perf_counter()
        may_drop = self.status().total
        built = dropped = 0
        busy = False
        with self.engine.connect() as connection:
            while built < target or dropped < may_drop:
                with connection.begin():  # one spare per transaction
                    if not self._lock(connection, wait):
                        busy = True
                        break
                    registry = SqlSpareRegistry(connection)
                    ready = registry.count_by_revision()[head]
                    victim = None
                    if dropped < may_drop:
                        victim = registry.take_other_than({head}, only=stale_revisions)
                        if victim is None and shrink and ready > target:
                            victim = registry.claim(head)
                    if victim is not None:
                        self._drop(connection, victim)
                        dropped += 1
                    elif ready < target and built < target:
                        self._build(connection, registry, head)
                        built += 1
                    else:
                        break
                if progress is not None:
                    progress()
        result = RefillResult(built, dropped, busy, time.perf_counter() - started)
        if built or dropped:
            log.info(
                "spare schemas refilled",
                extra={"built": built, "dropped": dropped, "seconds": round(result.seconds, 3)},
            )
        return result

    @staticmethod
    def _lock(connection: Connection, wait: bool) -> bool:
        if wait:
            connection.execute(select(func.pg_advisory_xact_lock(POOL_LOCK)))
            return True
        return bool(connection.execute(select(func.pg_try_advisory_xact_lock(POOL_LOCK))).scalar_one())

    def _build(self, connection: Connection, registry: SqlSpareRegistry, head: str) -> None:
        """A complete tenant schema, role and grants included, under a fresh UUID4 (the id
        the claiming tenant takes), registered in the same transaction."""
        spare_id = uuid.uuid4()
        revision = SqlSchemaManager(connection, self._runtime_role).create(schema_name_for(spare_id))
        if revision != head:  # never register a spare that claims would not find
            raise RuntimeError(f"spare schema built at {revision}, not at the head {head}")
        registry.add(spare_id, revision)

    def _drop(self, connection: Connection, spare: SpareSchema) -> None:
        """DROP SCHEMA and DROP ROLE, in the transaction that deleted the spare's row."""
        SqlSchemaManager(connection, self._runtime_role).drop(schema_name_for(spare.id))
