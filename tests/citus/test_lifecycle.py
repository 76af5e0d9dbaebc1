"""The tenant lifecycle on the cluster: disable/enable, the worker's export download, delete and
purge, and the operator's dump and restore (as the same tenant and as a new one), each restored
schema distributed again and served from a worker. Another tenant is never touched."""

from __future__ import annotations

import io
import zipfile

import psycopg
import pytest

from backend.infrastructure import migrations
from tests.citus.test_distributed_schemas import _placements
from tests.integration.lifecycle_data.conftest import (  # noqa: F401  (fixtures)
    add_client_user,
    media_root,
    owner,
    registry_row,
    schema_exists,
    table_rows,
    workspace,
)

API = "/api/v1"


def run(app, *args):
    return app.test_cli_runner().invoke(args=["tenants", *args])


def _shards_on_workers(database, schema_name: str) -> int:
    """Tables of the schema present on the workers (shards are named `<table>_<shard id>`)."""
    total = 0
    for worker in database["cluster"].workers:
        with psycopg.connect(worker.url(database="saas")) as conn:
            total += conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema_name,)
            ).fetchone()[0]
    return total


@pytest.fixture()
def archive_path(settings, request):
    path = settings.exports_dir / f"{request.node.name}.tar"
    yield path
    path.unlink(missing_ok=True)


def test_disable_blocks_only_that_tenant_and_enable_lifts_it(app, client, make_tenant, worker_token):
    tenant, other = make_tenant(), make_tenant()
    assert run(app, "disable", "--slug", tenant.slug).exit_code == 0
    blocked = client.get(f"{API}/clients", headers=worker_token(tenant))
    assert (blocked.status_code, blocked.json) == (403, {"detail": "tenant_disabled"})
    assert client.get(f"{API}/clients", headers=worker_token(other)).status_code == 200
    assert run(app, "enable", "--slug", tenant.slug).exit_code == 0
    assert client.get(f"{API}/clients", headers=worker_token(tenant)).status_code == 200


def test_export_download_holds_the_tenants_rows_from_its_worker(client, owner, make_tenant, worker_token):  # noqa: F811
    tenant, other = make_tenant(), make_tenant()
    add_client_user(owner, tenant, "Ada on a worker")
    add_client_user(owner, other, "Other-tenant-secret")
    response = client.get(f"{API}/export", headers=worker_token(tenant))
    assert response.status_code == 200, response.data[:200]
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert b"Ada on a worker" in archive.read("tables/clients.csv")
    for name in archive.namelist():
        assert b"Other-tenant-secret" not in archive.read(name)


def test_dump_purge_restore_brings_the_tenant_back_distributed(
    app,
    client,
    database,
    owner,  # noqa: F811
    workspace,  # noqa: F811
    worker_token,
    make_tenant,
    archive_path,
):
    ws, other = workspace(), make_tenant()
    tenant = ws.tenant
    rows_before = table_rows(owner, tenant.schema_name, "clients")
    other_node = _placements(database)[other.schema_name]
    assert run(app, "export", "--slug", tenant.slug, "--out", str(archive_path)).exit_code == 0

    purged = run(app, "delete", "--slug", tenant.slug, "--now")
    assert purged.exit_code == 0, purged.output
    assert not schema_exists(owner, tenant.schema_name)
    assert tenant.schema_name not in _placements(database)
    assert _shards_on_workers(database, tenant.schema_name) == 0  # gone from its worker too
    assert registry_row(owner, tenant.id)["status"] == "deleted"

    restored = run(app, "restore", "--file", str(archive_path))
    assert restored.exit_code == 0, restored.output
    # A distributed schema again, on a worker, with its rows, served through the coordinator.
    node = _placements(database).get(tenant.schema_name)
    assert node in {w.port for w in database["cluster"].workers}
    assert _shards_on_workers(database, tenant.schema_name) > 0
    assert registry_row(owner, tenant.id)["schema_version"] == migrations.head_revision("tenant")
    assert table_rows(owner, tenant.schema_name, "clients") == rows_before
    listed = client.get(f"{API}/clients", headers=worker_token(tenant))
    assert listed.status_code == 200
    assert sorted(c["id"] for c in listed.json) == sorted(str(row[0]) for row in rows_before)
    created = client.post(f"{API}/clients", json={"name": "after restore"}, headers=worker_token(tenant))
    assert created.status_code == 201, created.json

    # Restored again as a new tenant beside it: its own distributed schema.
    copy = run(app, "restore", "--file", str(archive_path), "--slug", f"copy-{tenant.slug}")
    assert copy.exit_code == 0, copy.output
    placements = _placements(database)
    copies = [name for name in placements if name not in {tenant.schema_name, other.schema_name}]
    copy_schema = next(name for name in copies if table_rows(owner, name, "clients") == rows_before)
    assert placements[copy_schema] in {w.port for w in database["cluster"].workers}
    # The other tenant never moved and never saw any of it.
    assert _placements(database)[other.schema_name] == other_node
    assert client.get(f"{API}/clients", headers=worker_token(other)).json == []
