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
