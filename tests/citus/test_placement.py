"""`tenants placement`: the worker of each tenant, as Citus's own catalog says."""

from __future__ import annotations

import json

from tests.citus.test_distributed_schemas import _placements


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
    import pytest
    from sqlalchemy.exc import DBAPIError

    from backend.infrastructure.sql.placement import effective_mode, move_schema, node_of
    from tests.owner import owner_engine

    if not database["cluster"].poolers:
        pytest.skip("PgBouncer is not installed (Debian `pgbouncer`): the cluster runs without poolers")
    tenant = make_tenant()
    engine = owner_engine()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        assert effective_mode(connection, "auto") == "block_writes"
        assert effective_mode(connection, "force_logical") == "force_logical"
        source = node_of(connection, tenant.schema_name)
        target = next(
            f"127.0.0.1:{w.port}" for w in database["cluster"].workers if f"127.0.0.1:{w.port}" != source
        )
        # What `auto` would have done (logical replication, the tenant has a primary key):
        with pytest.raises(DBAPIError) as refused:
            move_schema(connection, tenant.schema_name, target, "force_logical")
        assert "unsupported startup parameter: replication" in str(refused.value.orig)
        move_schema(connection, tenant.schema_name, target, "auto")
        assert node_of(connection, tenant.schema_name) == target
