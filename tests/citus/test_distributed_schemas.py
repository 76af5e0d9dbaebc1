"""Provisioning on a Citus coordinator: tenant schemas are distributed schemas placed on the
workers, the shared schema stays on the coordinator, and tenant roles work through the hop."""

from __future__ import annotations

import psycopg
import pytest

from backend.core.db import tenant_role_name
from backend.infrastructure import embedded_postgres


def _placements(database) -> dict[str, int]:
    """Schema name -> port of the worker holding its tables."""
    with psycopg.connect(database["superuser"]) as conn:
        rows = conn.execute(
            "SELECT DISTINCT s.schema_name::text, p.nodeport"
            " FROM public.citus_schemas s"
            " JOIN pg_dist_partition t ON t.colocationid = s.colocation_id"
            " JOIN pg_dist_shard sh ON sh.logicalrelid = t.logicalrelid"
            " JOIN pg_dist_placement pl ON pl.shardid = sh.shardid"
            " JOIN pg_dist_node p ON p.groupid = pl.groupid"
        ).fetchall()
    return dict(rows)


def test_tenant_schemas_are_distributed_over_both_workers(database, make_tenant):
    tenants = [make_tenant() for _ in range(4)]
    placements = _placements(database)
    worker_ports = {worker.port for worker in database["cluster"].workers}
    for tenant in tenants:
        assert placements[tenant.schema_name] in worker_ports
    # Citus places new distributed schemas round robin: four tenants use both workers.
    assert {placements[tenant.schema_name] for tenant in tenants} == worker_ports


def test_shared_schema_stays_on_the_coordinator(database, app):
    with psycopg.connect(database["superuser"]) as conn:
        distributed = conn.execute(
            "SELECT count(*) FROM public.citus_schemas WHERE schema_name::text = 'shared'"
        ).fetchone()[0]
        shared_tables = conn.execute(
            "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'shared.%'"
        ).fetchone()[0]
    assert distributed == 0
    assert shared_tables == 0


def test_tenant_requests_run_as_the_tenant_role_on_the_workers(client, make_tenant, worker_token):
    """The coordinator opens its worker connections as the tenant role (`SET LOCAL ROLE`): a
    NOLOGIN role would fail every request with `not permitted to log in`."""
    tenant, other = make_tenant(), make_tenant()
    created = client.post("/api/v1/clients", json={"name": "Ada"}, headers=worker_token(tenant))
    assert created.status_code == 201, created.json
    mine = client.get("/api/v1/clients", headers=worker_token(tenant))
    assert mine.status_code == 200, mine.json
    assert [row["name"] for row in mine.json] == ["Ada"]
    theirs = client.get("/api/v1/clients", headers=worker_token(other))
    assert theirs.status_code == 200, theirs.json
    assert theirs.json == []


def test_tenant_roles_log_in_to_workers_only(database, make_tenant):
    """Tenant roles may log in (the coordinator's hop), but the coordinator refuses them:
    only the runtime role connects there, then assumes a tenant role per transaction. The
    rules are the deployment's (deploy/citus/*.sh), applied by the local cluster."""
    tenant = make_tenant()
    role = tenant_role_name(tenant.schema_name)
    cluster = database["cluster"]
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects"):
        psycopg.connect(cluster.coordinator.url(role, "saas")).close()
    for worker in cluster.workers:
        with psycopg.connect(worker.url(role, "saas")) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == role


def _on_socket(node, user: str) -> str:
    """The node's Unix socket (its data directory), as a shell inside its container uses."""
    return psycopg.conninfo.make_conninfo(host=str(node.data_dir), port=node.port, user=user, dbname="saas")


def test_the_coordinators_socket_admits_the_deployment_roles_and_refuses_tenant_roles(database, make_tenant):
    """`+saas_app_tenant` also matches the runtime role (a member of every tenant role): the
    deployment's roles are admitted by name before the tenant group is refused, on the socket
    as over TCP (an operator's `psql -U saas_app` inside the coordinator's container)."""
    role = tenant_role_name(make_tenant().schema_name)
    coordinator = database["cluster"].coordinator
    for user in (embedded_postgres.RUNTIME_ROLE, embedded_postgres.OWNER_ROLE, "postgres"):
        with psycopg.connect(_on_socket(coordinator, user)) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == user
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects"):
        psycopg.connect(_on_socket(coordinator, role)).close()


def test_the_coordinator_admits_its_own_connections_and_workers_only_the_cluster(database, make_tenant):
    """Citus connects to `citus.local_hostname` as the current user (before every shard move,
    as the owner running `tenants move`): in a deployment from loopback, outside the cluster's
    network. The local cluster makes those connections come from ::1 (its cluster network is
    127.0.0.1/32), so the coordinator's rules for the node itself are the ones admitting them;
    tenant roles stay refused there. To a worker, ::1 is outside the cluster's network: every
    role is refused, the superuser needs a password."""
    cluster = database["cluster"]
    role = tenant_role_name(make_tenant().schema_name)
    with psycopg.connect(cluster.coordinator.url(database="saas")) as conn:
        if conn.execute("SHOW citus.local_hostname").fetchone()[0] != "::1":
            pytest.skip("no IPv6 loopback here: the nodes' own connections share 127.0.0.1 with the cluster")

    def from_outside(node, user: str) -> str:
        return f"postgresql://{user}@[::1]:{node.port}/saas"

    owner = embedded_postgres.OWNER_ROLE
    with psycopg.connect(from_outside(cluster.coordinator, owner)) as conn:
        assert conn.execute("SELECT current_user, host(inet_client_addr())").fetchone() == (owner, "::1")
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects"):
        psycopg.connect(from_outside(cluster.coordinator, role)).close()
    for worker in cluster.workers:
        for user in (role, owner, embedded_postgres.RUNTIME_ROLE):
            with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects"):
                psycopg.connect(from_outside(worker, user)).close()
        password = r"no password supplied|password authentication failed"
        with pytest.raises(psycopg.OperationalError, match=password):
            psycopg.connect(from_outside(worker, "postgres")).close()


def _worker_backends(database, roles: list[str] | None = None) -> dict[int, set[int]]:
    """Worker port -> pids of the client backends in the application database (all of them,
    or those logged in as `roles`), this test's own connection left out."""
    found = {}
    for worker in database["cluster"].workers:
        with psycopg.connect(worker.url(database="saas")) as conn:
            found[worker.port] = {
                pid
                for (pid,) in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'"
                    " AND datname = 'saas' AND pid <> pg_backend_pid()"
                    " AND (%s::text[] IS NULL OR usename = ANY(%s))",
                    (roles, roles),
                )
            }
    return found


def _set_on_poolers(database, setting: str, value: int) -> None:
    for pooler in database["cluster"].poolers:
        with psycopg.connect(
            f"host=127.0.0.1 port={pooler.port} user=postgres dbname=pgbouncer", autocommit=True
        ) as console:
            console.execute(f"SET {setting} = {value}")


def test_worker_connections_are_reused_per_tenant_role_and_bounded_by_the_poolers(
    client, database, make_tenant, worker_token
):
    """The hop runs as each tenant's role. Without a pooler, a connection per tenant per API
    backend piled up on the workers (out of slots at 200 tenants), so none was kept and every
    request started a worker backend. Through the PgBouncer in front of each worker the
    coordinator keeps its connections, a tenant's next transaction reuses the worker backend
    of the first, and the worker's backends stay under PgBouncer's cap, which closes idle
    ones of other roles to make room (docs/scale-out.md, "Worker connections")."""
    from backend.infrastructure import citus_cluster

    if not database["cluster"].poolers:
        pytest.skip("PgBouncer is not installed (Debian `pgbouncer`): the cluster runs without poolers")
    tenants = [make_tenant() for _ in range(4)]
    roles = [tenant_role_name(tenant.schema_name) for tenant in tenants]
    for tenant in tenants:
        assert client.get("/api/v1/clients", headers=worker_token(tenant)).status_code == 200
    first = _worker_backends(database, roles)
    assert sum(len(pids) for pids in first.values()) == len(tenants)  # one worker backend each
    for tenant in tenants:
        assert client.get("/api/v1/clients", headers=worker_token(tenant)).status_code == 200
    assert _worker_backends(database, roles) == first  # reused: no new worker backend

    cap = 2
    _set_on_poolers(database, "max_db_connections", cap)
    try:
        others = [make_tenant() for _ in range(4)]
        everyone = [*others, *tenants]
        for tenant in everyone:
            assert client.get("/api/v1/clients", headers=worker_token(tenant)).status_code == 200
        roles = [tenant_role_name(tenant.schema_name) for tenant in everyone]
        held = _worker_backends(database, roles)
        assert all(len(pids) <= cap for pids in held.values()), held  # 4 tenants on each worker
    finally:
        _set_on_poolers(database, "max_db_connections", citus_cluster.POOLER_SERVER_CONNECTIONS)
