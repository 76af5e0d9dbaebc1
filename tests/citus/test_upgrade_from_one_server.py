"""A single server becomes the coordinator (docs/scale-out.md, "Upgrade path from one server"):
tenants provisioned on a plain PostgreSQL 15 without Citus, then Citus preloaded, the extension
created, two workers added, and `tenants distribute` run. Every tenant schema and the spare
schema become distributed schemas on the workers with their rows, the API serves each tenant
through the coordinator hop with isolation, `shared` stays local on the coordinator, a second
run changes nothing, and a schema Citus cannot distribute fails alone."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from backend.cli.spares import refill_spare_pool
from backend.core.db import tenant_role_name
from backend.infrastructure import citus_cluster, migrations
from backend.infrastructure.sql.spares import spare_schemas
from tests.citus.single_server import populate, release, single_server_app, worker_headers
from tests.integration.lifecycle_data.conftest import table_rows

API = "/api/v1"
TENANTS = 6


def _schema_nodes(superuser_url: str) -> dict[str, int]:
    """Distributed schema -> port of the worker holding its tables."""
    with psycopg.connect(superuser_url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT s.schema_name::text, n.nodeport FROM public.citus_schemas s"
            " JOIN pg_dist_partition p ON p.colocationid = s.colocation_id"
            " JOIN pg_dist_shard sh ON sh.logicalrelid = p.logicalrelid"
            " JOIN pg_dist_placement pl ON pl.shardid = sh.shardid"
            " JOIN pg_dist_node n ON n.groupid = pl.groupid"
        ).fetchall()
    return dict(rows)


def _audited(superuser_url: str) -> list[dict]:
    """The metadata of every `tenant.distributed` event."""
    with psycopg.connect(superuser_url) as conn:
        rows = conn.execute("SELECT metadata FROM shared.audit_events WHERE event = 'tenant.distributed'")
        return [metadata for (metadata,) in rows]


@pytest.fixture(scope="module")
def upgraded(app):
    """The single server, its tenants and spare, then made a coordinator with two workers.
    (`app`: the suite's, on its cluster: skips where Citus is not installed.)"""
    base = Path(tempfile.mkdtemp(prefix="citus-upgrade-"))
    base.chmod(0o755)  # the server user must reach its data directories below
    node = citus_cluster.start_single(base / "single")
    cluster = None
    try:
        urls = {
            "runtime": node.url("saas_app", "saas"),
            "owner": node.url("saas_owner", "saas"),
            "superuser": node.url(database="saas"),
        }
        single = single_server_app(urls, base / "var")
        made = [populate(single) for _ in range(TENANTS)]
        refill_spare_pool(single, reason="test", at_least=1)
        with single.extensions["saas.owner"].engine.connect() as connection:
            spare = connection.execute(spare_schemas.select()).mappings().one()["schema_name"]
        # A tenant schema Citus cannot distribute: a table with a foreign key to `shared`
        # (a local table on the coordinator), as a hand-made addition might have.
        broken = made[-1].tenant.schema_name
        with psycopg.connect(urls["superuser"], autocommit=True) as conn:
            conn.execute(
                f"CREATE TABLE {broken}.handmade (tenant_id uuid REFERENCES shared.tenants (id))"
                f"; ALTER TABLE {broken}.handmade OWNER TO saas_owner"
            )
        rows = {m.tenant.schema_name: table_rows(single.extensions["saas.owner"].engine,
                                                  m.tenant.schema_name, "clients") for m in made}  # fmt: skip
        release(single)

        citus_cluster.make_coordinator(node)
        cluster = citus_cluster.add_workers(base / "workers", node)
        app = single_server_app(urls, base / "var", citus=True)
        yield {
            "app": app,
            "cluster": cluster,
            "superuser": urls["superuser"],
            "made": made,
            "rows": rows,
            "spare": spare,
            "broken": made[-1],
        }
        release(app)
    finally:
        if cluster is not None:
            cluster.stop()  # the coordinator (the former single server) and the workers
        else:
            node.stop()
        shutil.rmtree(base, ignore_errors=True)


def _distribute(app) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["tenants", "distribute"])
    print(result.output)  # the per-schema seconds: the figures of docs/scale-out.md
    return result.exit_code, result.output


def test_distribute_turns_a_single_servers_schemas_into_distributed_schemas(upgraded):
    app, superuser = upgraded["app"], upgraded["superuser"]
    cluster, made, broken = upgraded["cluster"], upgraded["made"], upgraded["broken"]
    good = [m for m in made if m is not broken]
    worker_ports = {worker.port for worker in cluster.workers}
    assert _schema_nodes(superuser) == {}  # nothing distributed by adding Citus alone

    code, output = _distribute(app)
    # The one schema Citus refuses fails alone, reported by slug with the reason; exit 1.
    assert code == 1, output
    assert re.search(rf"{broken.tenant.slug}\s+{broken.tenant.schema_name}\s+failed\s", output), output
    assert f"{len(good) + 1} distributed, 0 already distributed, 0 busy (another run), 1 failed" in output
    nodes = _schema_nodes(superuser)
    assert broken.tenant.schema_name not in nodes
    for schema in [m.tenant.schema_name for m in good] + [upgraded["spare"]]:
        assert nodes[schema] in worker_ports
    # Citus places the schemas it distributes round robin: both workers hold tenants.
    assert set(nodes.values()) == worker_ports
    audited = _audited(superuser)
    assert sorted(a["schema_name"] for a in audited) == sorted(
        [m.tenant.schema_name for m in good] + [upgraded["spare"]]
    )
    assert all(a["role_login"] is True and a["node"].endswith(f":{nodes[a['schema_name']]}") for a in audited)

    # Rows intact, and the API serves every tenant through the hop, as its own role.
    client, owner_engine = app.test_client(), app.extensions["saas.owner"].engine
    for m in good:
        before = upgraded["rows"][m.tenant.schema_name]
        assert table_rows(owner_engine, m.tenant.schema_name, "clients") == before
        listed = client.get(f"{API}/clients", headers=worker_headers(app, m))
        assert listed.status_code == 200, listed.json
        assert sorted(c["id"] for c in listed.json) == sorted(str(i) for i in m.client_ids)
        created = client.post(f"{API}/clients", json={"name": "after"}, headers=worker_headers(app, m))
        assert created.status_code == 201, created.json
    # Isolation: one tenant cannot fetch another's client.
    first, second = good[0], good[1]
    foreign = client.get(f"{API}/clients/{second.client_ids[0]}", headers=worker_headers(app, first))
    assert foreign.status_code == 404
    # The tenant roles log in to the workers (the hop) and never to the coordinator.
    role = tenant_role_name(first.tenant.schema_name)
    with psycopg.connect(cluster.workers[0].url(role, "saas")) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == role
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects"):
        psycopg.connect(cluster.coordinator.url(role, "saas")).close()

    # `shared` and its version table stay local on the coordinator; a tenant's alembic_version
    # went with its schema to the worker, at head.
    with psycopg.connect(superuser) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'shared.%'"
        ).fetchone()[0] == 0  # fmt: skip
        assert conn.execute("SELECT version_num FROM shared.alembic_version").fetchone()[0] == (
            migrations.head_revision("shared")
        )
        version_table = f"{first.tenant.schema_name}.alembic_version"
        assert conn.execute(
            "SELECT partmethod FROM pg_dist_partition WHERE logicalrelid = %s::regclass", (version_table,)
        ).fetchone() == ("n",)  # a single-shard table of the distributed schema
        assert conn.execute(f"SELECT version_num FROM {version_table}").fetchone()[0] == (
            migrations.head_revision("tenant")
        )

    # A second run changes nothing (the broken schema still fails, alone).
    code, output = _distribute(app)
    assert code == 1
    assert f"0 distributed, {len(good) + 1} already distributed, 0 busy (another run), 1 failed" in output
    assert _schema_nodes(superuser) == nodes
    assert len(_audited(superuser)) == len(good) + 1

    # The operator removes the cause; the next run finishes that schema and only it.
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {broken.tenant.schema_name}.handmade")
    code, output = _distribute(app)
    assert code == 0, output
    assert f"1 distributed, {len(good) + 1} already distributed, 0 busy (another run), 0 failed" in output
    assert _schema_nodes(superuser)[broken.tenant.schema_name] in worker_ports
    listed = client.get(f"{API}/clients", headers=worker_headers(app, broken))
    assert sorted(c["id"] for c in listed.json) == sorted(str(i) for i in broken.client_ids)
    code, output = _distribute(app)
    assert (code, "0 distributed" in output) == (0, True), output

    # The distributed spare serves the next signup-like provisioning, through the hop.
    claimed = populate(app, media=0, spares=True)
    assert claimed.tenant.schema_name == upgraded["spare"]
    listed = client.get(f"{API}/clients", headers=worker_headers(app, claimed))
    assert sorted(c["id"] for c in listed.json) == sorted(str(i) for i in claimed.client_ids)
    # A tenant provisioned now is distributed as it is created.
    new = populate(app, media=0)
    assert _schema_nodes(superuser)[new.tenant.schema_name] in worker_ports
    with app.extensions["saas.owner"].engine.connect() as connection:
        assert connection.execute(
            text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": new.tenant.schema_name}
        ).scalar()
