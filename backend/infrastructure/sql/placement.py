"""Where each tenant lives on a Citus cluster, and moving it: the worker holding its
distributed schema, `citus_schema_move` for one tenant, the rebalancer for the fleet.

Only Citus's public functions and catalog are used (docs/scale-out.md). Both operations run
as the owner role (it owns the tenant tables, which is what Citus asks of a move); a move
through logical replication keeps the tenant serving, writes wait only for the final switch
(not behind PgBouncer before 1.23: `effective_mode`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from backend.core.db import tenant_role_name
from backend.core.tenancy import validate_schema_name
from backend.domain.placement import SchemaMove, TenantSchema
from backend.infrastructure.sql.privileges import tenant_group_role
from backend.infrastructure.sql.tenants import tenant_lock_key

# How Citus copies the shards: `auto` and `force_logical` stream the tables while the tenant
# keeps serving (logical replication) and block writes only for the final catch-up;
# `block_writes` copies with writes blocked for the whole copy.
TRANSFER_MODES = ("auto", "force_logical", "block_writes")
# Citus 13.2 opens the replication connection of a logical move to the address in
# pg_dist_poolinfo too (connection_configuration.c, GetEffectiveConnKey: every connection to the
# node), and PgBouncer before 1.23 refuses it (`unsupported startup parameter: replication`).
# Behind such poolers `auto` copies with writes blocked (docs/scale-out.md, "Worker
# connections"); `force_logical` is passed on, for poolers that pass replication through.
_ROUTED_THROUGH_POOLERS = text("SELECT EXISTS (SELECT 1 FROM pg_dist_poolinfo)")


# What Citus ran, as printed and audited: `auto` and `force_logical` both copy by logical
# replication on PostgreSQL 10+ (Citus's `auto` refuses a table without a replica identity rather
# than block writes: shard_transfer.c), so a move is either `logical` or `block_writes`.
LOGICAL = "logical"
BLOCK_WRITES = "block_writes"
# PgBouncer before 1.23 answers a replication connection with this (src/client.c); Citus relays
# it inside its own XX000 "connection to the remote node ... failed" error.
_POOLER_REFUSES_REPLICATION = "unsupported startup parameter: replication"
REPLICATION_REFUSED = (
    "the coordinator reaches the workers through poolers (pg_dist_poolinfo) that refuse the "
    "replication connection of a logical move (PgBouncer before 1.23): nothing was moved. "
    "Use --mode auto (copies with the tenant's writes blocked for the whole copy; "
    'docs/scale-out.md, "Placement and moving tenants"), or poolers that pass replication '
    "through (PgBouncer 1.23+)"
)


def transfer_ran(mode: str) -> str:
    """`logical` or `block_writes`: how Citus copied, for a mode effective_mode returned."""
    return BLOCK_WRITES if mode == BLOCK_WRITES else LOGICAL


def refused_replication(error: BaseException | str | None) -> bool:
    """Whether a move failed because a pooler refused its replication connection."""
    return error is not None and _POOLER_REFUSES_REPLICATION in str(error)


def effective_mode(connection: Connection, mode: str) -> str:
    """The transfer mode Citus is asked for: `auto` becomes `block_writes` where the
    coordinator reaches the workers through poolers (pg_dist_poolinfo)."""
    if mode not in TRANSFER_MODES:
        raise PlacementError(f"unknown transfer mode {mode!r} (one of {', '.join(TRANSFER_MODES)})")
    if mode == "auto" and connection.execute(_ROUTED_THROUGH_POOLERS).scalar():
        return "block_writes"
    return mode


REBALANCE_STRATEGIES = ("by_shard_count", "by_disk_size")


class PlacementError(Exception):
    """A move or rebalance Citus cannot do as asked (unknown node, not distributed...)."""


class ReplicationRefused(PlacementError):
    """A pooler in front of a worker refused the replication connection of a logical move."""


@dataclass(frozen=True)
class Placement:
    slug: str
    schema_name: str
    node: str | None  # HOST:PORT of the worker; None: not a distributed schema (not on Citus)


# A distributed schema's tables are co-located: the placement of any one shard of the schema
# is the tenant's node. citus_schemas / pg_dist_* are Citus's public catalog views and tables.
_NODE_OF = text(
    "SELECT n.nodename || ':' || n.nodeport"
    " FROM public.citus_schemas s"
    " JOIN pg_dist_partition p ON p.colocationid = s.colocation_id"
    " JOIN pg_dist_shard sh ON sh.logicalrelid = p.logicalrelid"
    " JOIN pg_dist_placement pl ON pl.shardid = sh.shardid"
    " JOIN pg_dist_node n ON n.groupid = pl.groupid"
    " WHERE s.schema_name::text = :schema LIMIT 1"
)
_PLACEMENTS = text(
    "SELECT t.slug, t.schema_name, ("
    "  SELECT n.nodename || ':' || n.nodeport"
    "  FROM public.citus_schemas s"
    "  JOIN pg_dist_partition p ON p.colocationid = s.colocation_id"
    "  JOIN pg_dist_shard sh ON sh.logicalrelid = p.logicalrelid"
    "  JOIN pg_dist_placement pl ON pl.shardid = sh.shardid"
    "  JOIN pg_dist_node n ON n.groupid = pl.groupid"
    "  WHERE s.schema_name::text = t.schema_name LIMIT 1"
    ") AS node FROM shared.tenants t WHERE t.status <> 'deleted' ORDER BY t.slug"
)
# Workers that may hold shards; the coordinator holds the shared schema only.
_WORKERS = text(
    "SELECT nodename || ':' || nodeport FROM pg_dist_node"
    " WHERE noderole = 'primary' AND isactive AND shouldhaveshards AND groupid <> 0"
    " ORDER BY nodename, nodeport"
)


# Every tenant-shaped schema of the database (tenants of any status, spare schemas, orphans),
# with the tenant holding it, whether Citus distributes it and whether its role may log in.
_TENANT_SCHEMAS = text(
    "SELECT n.nspname::text AS schema_name, t.id AS tenant_id, t.slug,"
    " EXISTS (SELECT FROM public.citus_schemas s WHERE s.schema_name = n.oid::regnamespace) AS distributed,"
    " coalesce(r.rolcanlogin, false) AS can_login"
    " FROM pg_catalog.pg_namespace n"
    " LEFT JOIN shared.tenants t ON t.schema_name = n.nspname::text"
    " LEFT JOIN pg_catalog.pg_roles r ON r.rolname = n.nspname"
    " WHERE n.nspname ~ '^tenant_[0-9a-f]{32}$' ORDER BY t.slug NULLS LAST, n.nspname"
)

_IS_DISTRIBUTED = text(
    "SELECT EXISTS (SELECT FROM public.citus_schemas WHERE schema_name = CAST(:schema AS regnamespace))"
)


def is_citus(connection: Connection) -> bool:
    return connection.execute(text("SELECT to_regclass('public.citus_schemas') IS NOT NULL")).scalar()


def tenant_placements(connection: Connection) -> list[Placement]:
    return [Placement(row.slug, row.schema_name, row.node) for row in connection.execute(_PLACEMENTS)]


def node_of(connection: Connection, schema_name: str) -> str | None:
    """HOST:PORT of the worker holding the schema, None when it is not distributed."""
    return connection.execute(_NODE_OF, {"schema": schema_name}).scalar()


def worker_nodes(connection: Connection) -> list[str]:
    return list(connection.execute(_WORKERS).scalars())


def move_schema(connection: Connection, schema_name: str, target: str, mode: str) -> str:
    """Move the tenant's distributed schema (all its co-located tables) to `target`
    (HOST:PORT); returns how Citus copied it (`logical` or `block_writes`, transfer_ran). Runs
    outside a transaction block: Citus refuses a move inside one. The caller's connection must
    be in autocommit mode. A pooler refusing the replication connection of a logical move is a
    PlacementError saying so; Citus has then undone the move (its cleanup records of the
    operation are processed before the error returns: tests/citus/test_placement.py)."""
    mode = effective_mode(connection, mode)
    if target not in worker_nodes(connection):
        raise PlacementError(f"{target} is not an active worker of this cluster")
    if node_of(connection, schema_name) is None:
        raise PlacementError(f"schema {schema_name} is not a distributed schema")
    host, port = target.rsplit(":", 1)
    # The mode is a literal from TRANSFER_MODES: as a parameter it would need a cast to
    # citus.shard_transfer_mode, whose schema the owner role may not use.
    try:
        connection.execute(
            text(f"SELECT citus_schema_move(CAST(:schema AS regnamespace), :host, :port, '{mode}')"),
            {"schema": schema_name, "host": host, "port": int(port)},
        )
    except DBAPIError as error:
        if refused_replication(error.orig):
            raise ReplicationRefused(REPLICATION_REFUSED) from error
        raise
    return transfer_ran(mode)


def tenant_schemas(connection: Connection) -> list[TenantSchema]:
    return [
        TenantSchema(row.schema_name, row.tenant_id, row.slug, row.distributed, row.can_login)
        for row in connection.execute(_TENANT_SCHEMAS)
    ]


def distribute_schema(
    connection: Connection, schema: TenantSchema, runtime_role: str, lock_timeout_ms: int
) -> bool:
    """Make one existing tenant schema fit the cluster, in the caller's transaction: its tenant
    role may log in (the coordinator opens its worker connections as that role;
    docs/scale-out.md, "Node-to-node authentication") and the schema becomes a distributed
    schema with Citus's public `citus_schema_distribute`, which moves its tables, rows
    included, to a worker as single-shard tables co-located with each other. Under the
    tenant's advisory lock (the one `tenants migrate` takes): False, nothing done, when another
    run holds it. Waits at most `lock_timeout_ms` for the schema's table locks (requests
    holding them finish first; a busy tenant fails and the next run retries it)."""
    schema_name = validate_schema_name(schema.schema_name)
    key = tenant_lock_key(uuid.UUID(hex=schema_name.removeprefix("tenant_")))
    if not connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}).scalar():
        return False
    connection.execute(
        text("SELECT set_config('lock_timeout', :value, true)"), {"value": f"{lock_timeout_ms}ms"}
    )
    role = tenant_role_name(schema_name)
    can_login = connection.execute(
        text("SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = :role"), {"role": role}
    ).scalar()
    if can_login is None:
        raise PlacementError(f"schema {schema_name} has no tenant role (run `tenants migrate` first)")
    if not can_login:
        # The role is a distributed object (citus_add_node copied every role to the workers,
        # without their memberships): Citus propagates the ALTER and the GRANT to every
        # worker. The group's membership carries CONNECT on the database there.
        statements = [
            sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)),
            sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(tenant_group_role(runtime_role)), sql.Identifier(role)
            ),
        ]
        for statement in statements:
            connection.exec_driver_sql(statement.as_string(None), execution_options={"no_parameters": True})
    distributed = connection.execute(_IS_DISTRIBUTED, {"schema": schema_name}).scalar()
    if not distributed:
        connection.execute(
            text("SELECT citus_schema_distribute(CAST(:schema AS regnamespace))"), {"schema": schema_name}
        )
    return True


def rebalance_plan(connection: Connection, strategy: str) -> list[SchemaMove]:
    """The moves the rebalancer would make: one per tenant schema (Citus plans one row per
    co-location group, named by one of its tables)."""
    _check_strategy(strategy)
    rows = connection.execute(
        text(
            "SELECT DISTINCT ON (c.relnamespace) n.nspname::text AS schema_name,"
            " plan.sourcename || ':' || plan.sourceport AS source,"
            " plan.targetname || ':' || plan.targetport AS target"
            " FROM get_rebalance_table_shards_plan(rebalance_strategy := :strategy) plan"
            " JOIN pg_class c ON c.oid = plan.table_name"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
        ),
        {"strategy": strategy},
    )
    return [SchemaMove(row.schema_name, row.source, row.target) for row in rows]


def rebalance(connection: Connection, strategy: str, mode: str) -> str:
    """Start Citus's background rebalancer and wait for it to finish; returns how Citus copied
    the tenants (transfer_ran). Autocommit connection, as for a move."""
    _check_strategy(strategy)
    mode = effective_mode(connection, mode)
    job_id = connection.execute(
        text(
            f"SELECT citus_rebalance_start(rebalance_strategy := :strategy, shard_transfer_mode := '{mode}')"
        ),
        {"strategy": strategy},
    ).scalar()
    if job_id is not None:
        state = _wait_for_job(connection, job_id)
        if state != "finished":
            raise PlacementError(f"rebalance job {job_id} ended {state}: see citus_rebalance_status()")
    return transfer_ran(mode)


_JOB_STATE = text("SELECT state::text FROM pg_dist_background_job WHERE job_id = :job")
_JOB_ERRORS = text("SELECT message FROM pg_dist_background_task WHERE job_id = :job AND message IS NOT NULL")
_JOB_ENDED = ("finished", "failed", "cancelled")
JOB_POLL_S = 0.5


def _wait_for_job(connection: Connection, job_id: int) -> str:
    """Wait for the rebalance job to end (what citus_rebalance_wait does), watching its tasks:
    a move refused by a pooler would be retried by Citus for about half an hour (backoff 5 s,
    20 s, then 1 min, 32 tries: background_jobs.c, CalculateBackoffDelay), so the job is
    cancelled at the first such error and the operator told why. Returns the job's end state."""
    while True:
        state = connection.execute(_JOB_STATE, {"job": job_id}).scalar()
        if state in _JOB_ENDED:
            return state
        if any(refused_replication(m) for m in connection.execute(_JOB_ERRORS, {"job": job_id}).scalars()):
            connection.execute(text("SELECT citus_job_cancel(:job)"), {"job": job_id})
            while connection.execute(_JOB_STATE, {"job": job_id}).scalar() not in _JOB_ENDED:
                time.sleep(JOB_POLL_S)
            clean_up_after_failure(connection)
            raise PlacementError(f"rebalance job {job_id} cancelled: {REPLICATION_REFUSED}")
        time.sleep(JOB_POLL_S)


def clean_up_after_failure(connection: Connection) -> None:
    """A failed or cancelled move can leave its half-made shards on the target and its
    publication or slot on the source as pg_dist_cleanup records for the maintenance daemon
    (seen here after a refused logical move, in some runs); Citus's public procedure drops
    them now, so the operator is told of a failure that left nothing behind."""
    connection.execute(text("CALL citus_cleanup_orphaned_resources()"))


def _check_strategy(strategy: str) -> None:
    if strategy not in REBALANCE_STRATEGIES:
        raise PlacementError(f"unknown strategy {strategy!r} (one of {', '.join(REBALANCE_STRATEGIES)})")


class CitusPlacement:
    """The service's TenantPlacement on the owner's engine: each call on its own connection,
    in autocommit (Citus moves and rebalances outside a transaction block)."""

    def __init__(self, engine: Engine, runtime_role: str | None = None) -> None:
        self._engine = engine
        self._runtime_role = runtime_role  # the tenant group's name derives from it (distribute)

    def _connect(self) -> Connection:
        return self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def node_of(self, schema_name: str) -> str | None:
        with self._connect() as connection:
            return node_of(connection, schema_name)

    def move(self, schema_name: str, target: str, mode: str) -> str:
        try:
            with self._connect() as connection:
                return move_schema(connection, schema_name, target, mode)
        except ReplicationRefused:
            # From another session: the failed move's session may still hold the operation's
            # lock, and Citus skips the records of an operation it sees running.
            with self._connect() as connection:
                clean_up_after_failure(connection)
            raise

    def tenant_schemas(self) -> list[TenantSchema]:
        with self._connect() as connection:
            return tenant_schemas(connection)

    def distribute(self, schema: TenantSchema, lock_timeout_ms: int) -> bool:
        # One transaction per schema: a failure rolls back that schema alone (role and tables).
        with self._engine.begin() as connection:
            if self._runtime_role is None:
                raise PlacementError("tenant roles need the runtime role (DATABASE_URL's user)")
            return distribute_schema(connection, schema, self._runtime_role, lock_timeout_ms)

    def rebalance_plan(self, strategy: str) -> list[SchemaMove]:
        with self._connect() as connection:
            return rebalance_plan(connection, strategy)

    def rebalance(self, strategy: str, mode: str) -> str:
        with self._connect() as connection:
            return rebalance(connection, strategy, mode)
