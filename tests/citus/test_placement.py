"""`tenants placement`: the worker of each tenant, as Citus's own catalog says."""

from __future__ import annotations

import json

import psycopg
import pytest
from sqlalchemy import select

from backend.domain.placement import MOVED
from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.placement import REPLICATION_REFUSED, effective_mode, move_schema, node_of
from tests.citus.moves import API, client_names
from tests.citus.test_distributed_schemas import _placements
from tests.owner import owner_engine


def test_placement_names_the_worker_of_each_tenant(app, database, make_tenant):
    tenants = [make_tenant() for _ in range(2)]
    result = app.test_cli_runner().invoke(args=["tenants", "placement", "--format", "json"])
    assert result.exit_code == 0, result.output
    listed = {row["slug"]: row["node"] for row in json.loads(result.output)}
    expected = _placements(database)
    for tenant in tenants:
        assert listed[tenant.slug] == f"127.0.0.1:{expected[tenant.schema_name]}"


def test_behind_pgbouncer_auto_moves_block_writes_because_logical_ones_are_refused(
    app, database, make_tenant
):
    """Citus 13.2 opens a logical move's replication connection through pg_dist_poolinfo too;
    PgBouncer before 1.23 refuses it. `auto` therefore asks for block_writes behind the poolers
    (docs/scale-out.md, "Worker connections"), and the move succeeds."""
    engine = owner_engine()
    tenant = make_tenant()
    _needs_poolers(database)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        assert effective_mode(connection, "auto") == "block_writes"
        assert effective_mode(connection, "force_logical") == "force_logical"
        source = node_of(connection, tenant.schema_name)
        target = _other_worker(database, source)
        assert move_schema(connection, tenant.schema_name, target, "auto") == "block_writes"
        assert node_of(connection, tenant.schema_name) == target


def test_force_logical_behind_a_pooler_refusing_replication_is_one_clear_error_and_leaves_nothing(
    app, database, make_tenant, worker_token
):
    """`tenants move --mode force_logical` through PgBouncer 1.18: Citus fails with a raw XX000
    (`connection to the remote node ... failed ... unsupported startup parameter: replication`);
    the operator gets one line saying why and what to do, exit 1. Citus undoes the attempt
    itself: no shard of the tenant on the target, no cleanup record left, no replication slot,
    publication or subscription on either worker, nothing audited, and the tenant serves."""
    tenant = make_tenant()
    _needs_poolers(database)
    headers = worker_token(tenant)
    client = app.test_client()
    assert client.post(f"{API}/clients", json={"name": "before"}, headers=headers).status_code == 201
    source = _placements(database)[tenant.schema_name]
    target = _other_worker(database, f"127.0.0.1:{source}")

    result = app.test_cli_runner().invoke(
        args=["tenants", "move", "--slug", tenant.slug, "--to", target, "--mode", "force_logical"]
    )

    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines == [f"Error: {REPLICATION_REFUSED}"], result.output
    assert "XX000" not in result.output and "Traceback" not in result.output
    assert _placements(database)[tenant.schema_name] == source
    for worker in database["cluster"].workers:
        with psycopg.connect(worker.url(database="saas")) as conn:
            # Shards are the shard-id-suffixed tables; every worker also has the schema's shell
            # tables (Citus's metadata sync), unsuffixed. Citus hides shards from pg_class
            # unless told not to.
            conn.execute("SET citus.override_table_visibility = off")
            shards = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname ~ '_[0-9]+$'",
                (tenant.schema_name,),
            ).fetchone()[0]
            assert (shards > 0) == (worker.port == source), (worker.port, shards)
            leftovers = conn.execute(
                "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'citus%%'),"
                " (SELECT count(*) FROM pg_publication WHERE pubname LIKE 'citus%%'),"
                " (SELECT count(*) FROM pg_subscription WHERE subname LIKE 'citus%%')"
            ).fetchone()
            assert leftovers == (0, 0, 0), (worker.port, leftovers)
    with psycopg.connect(database["superuser"]) as conn:
        assert conn.execute("SELECT count(*) FROM pg_dist_cleanup").fetchone()[0] == 0
    with owner_engine().connect() as connection:
        events = connection.execute(
            select(audit_events.c.id).where(
                audit_events.c.tenant_id == tenant.id, audit_events.c.event == MOVED
            )
        ).all()
    assert events == []
    assert client.post(f"{API}/clients", json={"name": "after"}, headers=headers).status_code == 201
    assert sorted(client_names(owner_engine(), tenant.schema_name)) == ["after", "before"]


def _needs_poolers(database) -> None:
    if not database["cluster"].poolers:
        pytest.skip("PgBouncer is not installed (Debian `pgbouncer`): the cluster runs without poolers")


def _other_worker(database, node: str) -> str:
    return next(f"127.0.0.1:{w.port}" for w in database["cluster"].workers if f"127.0.0.1:{w.port}" != node)
