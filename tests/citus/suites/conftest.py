"""Suites of tests/integration run again here, on the Citus suite's session cluster: the
authorization matrix, the JWT attacks, least privilege, database-enforced tenant isolation and
the isolation fuzz (docs/scale-out.md, "Running it locally"). Each module here imports the
tests of one suite: one definition of each test, two databases.

Every module proves it ran on the cluster: the tenants it provisioned are distributed schemas
placed on the cluster's workers, on more than one worker when it made several (so its
cross-tenant cases cross nodes). A module whose tenants went to the embedded server, or that
made none, fails."""

from __future__ import annotations

import psycopg
import pytest

# Each tenant schema's worker (port), from Citus's catalog: the schema's co-located tables and
# their shard placements.
PLACEMENTS = """
SELECT t.id, t.schema_name, min(node.nodeport)
FROM shared.tenants t
LEFT JOIN public.citus_schemas s ON s.schema_name::text = t.schema_name
LEFT JOIN pg_dist_partition p ON p.colocationid = s.colocation_id
LEFT JOIN pg_dist_shard shard ON shard.logicalrelid = p.logicalrelid
LEFT JOIN pg_dist_placement placement ON placement.shardid = shard.shardid
LEFT JOIN pg_dist_node node ON node.groupid = placement.groupid
WHERE to_regnamespace(t.schema_name) IS NOT NULL
GROUP BY t.id, t.schema_name
"""


def tenant_placements(database) -> dict:
    """Tenant id -> (schema, worker port or None) for every tenant whose schema exists."""
    with psycopg.connect(database["superuser"]) as conn:
        return {row[0]: (row[1], row[2]) for row in conn.execute(PLACEMENTS)}


@pytest.fixture(scope="module", autouse=True)
def tenants_are_distributed_schemas(database, owner_of_the_cluster):
    """Checked when the module's tests are done (its module fixtures provision the tenants)."""
    before = set(tenant_placements(database))
    yield
    made = {tenant: placed for tenant, placed in tenant_placements(database).items() if tenant not in before}
    assert made, "no tenant of this module reached the cluster's registry: it ran elsewhere"
    workers = {worker.port for worker in database["cluster"].workers}
    stray = {schema: port for schema, port in made.values() if port not in workers}
    assert not stray, f"tenant schemas not distributed to a worker: {stray}"
    used = {port for _, port in made.values()}
    if len(made) > 1:
        assert used == workers, f"{len(made)} tenants all on one worker: {used}"
