"""An operator archive (`tenants export`) made on a single server, not Citus, restored into the
cluster with `tenants restore`, as the same tenant and as a new one: the schema becomes a
distributed schema on a worker with its rows and media, the tenant serves through the API as
its own role on the worker, and another tenant sees none of it. An archive of a newer
PostgreSQL major than the cluster's (the embedded server of the default tests) is refused in
one line, before anything is written (docs/scale-out.md, "Upgrade path from one server")."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from backend.core.db import tenant_role_name
from backend.infrastructure import citus_cluster, embedded_postgres, migrations
from backend.infrastructure.sql.tenants import tenants as tenants_table
from tests.citus.single_server import populate, release, single_server_app
from tests.citus.test_distributed_schemas import _placements
from tests.citus.test_lifecycle import _shards_on_workers
from tests.integration.lifecycle_data.conftest import schema_exists, table_rows
from tests.owner import owner_engine

API = "/api/v1"


def run(app, *args):
    return app.test_cli_runner().invoke(args=["tenants", *args])


def _export_from(urls: dict, work: Path) -> tuple:
    """Provision a tenant with clients and media on that single server and export it."""
    single = single_server_app(urls, work / "var")
    try:
        made = populate(single, clients=4, media=2)
        rows = table_rows(single.extensions["saas.owner"].engine, made.tenant.schema_name, "clients")
        archive = work / "archive.tar"
        exported = run(single, "export", "--slug", made.tenant.slug, "--out", str(archive))
        assert exported.exit_code == 0, exported.output
    finally:
        release(single)
    return made, rows, archive


@pytest.fixture(scope="module")
def pg15_archive(app):
    """An archive from a plain PostgreSQL 15 server without Citus (the cluster's major)."""
    work = Path(tempfile.mkdtemp(prefix="citus-single-archive-"))
    work.chmod(0o755)  # the server user must reach its data directory below
    node = citus_cluster.start_single(work / "server")
    try:
        urls = {
            "runtime": node.url("saas_app", "saas"),
            "owner": node.url("saas_owner", "saas"),
            "superuser": node.url(database="saas"),
        }
        yield _export_from(urls, work)
    finally:
        node.stop()
        shutil.rmtree(work, ignore_errors=True)


def _tenant_by_slug(slug: str):
    with owner_engine().connect() as connection:
        return connection.execute(select(tenants_table).where(tenants_table.c.slug == slug)).mappings().one()


def _assert_served_from_a_worker(client, database, settings, made, rows, tenant_id, schema_name, headers):
    """A distributed schema on a worker with the archive's rows and media, served by the API."""
    worker_ports = {worker.port for worker in database["cluster"].workers}
    assert _placements(database)[schema_name] in worker_ports
    assert _shards_on_workers(database, schema_name) > 0
    assert table_rows(owner_engine(), schema_name, "clients") == rows
    for name, content in made.media.items():
        assert (settings.media_dir / str(tenant_id) / name).read_bytes() == content
    listed = client.get(f"{API}/clients", headers=headers)
    assert listed.status_code == 200, listed.json
    assert sorted(c["id"] for c in listed.json) == sorted(str(i) for i in made.client_ids)


def test_a_single_servers_archive_restores_into_the_cluster_as_the_same_and_a_new_tenant(
    app, client, database, settings, pg15_archive, make_tenant, worker_token
):
    made, rows, archive = pg15_archive
    other = make_tenant()
    mine = client.post(f"{API}/clients", json={"name": "Other's client"}, headers=worker_token(other))
    assert mine.status_code == 201

    same = run(app, "restore", "--file", str(archive))
    assert same.exit_code == 0, same.output
    tenant = made.tenant
    row = _tenant_by_slug(tenant.slug)
    assert (row["id"], row["schema_name"]) == (tenant.id, tenant.schema_name)
    assert row["schema_version"] == migrations.head_revision("tenant")
    headers = worker_token(tenant)
    _assert_served_from_a_worker(
        client, database, settings, made, rows, tenant.id, tenant.schema_name, headers
    )
    created = client.post(f"{API}/clients", json={"name": "after restore"}, headers=headers)
    assert created.status_code == 201, created.json

    # Its role works through the coordinator hop (the request above ran as it on the worker)
    # and logs in to the workers only.
    role = tenant_role_name(tenant.schema_name)
    cluster = database["cluster"]
    with psycopg.connect(cluster.workers[0].url(role, "saas")) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == role
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects"):
        psycopg.connect(cluster.coordinator.url(role, "saas")).close()

    # Isolation, both ways.
    assert [c["name"] for c in client.get(f"{API}/clients", headers=worker_token(other)).json] == [
        "Other's client"
    ]
    foreign = client.get(f"{API}/clients/{made.client_ids[0]}", headers=worker_token(other))
    assert foreign.status_code == 404
    theirs = client.get(f"{API}/clients/{mine.json['id']}", headers=headers)
    assert theirs.status_code == 404

    # The same archive again, as a new tenant beside it: its own distributed schema and files.
    copy_slug = f"copy-{tenant.slug}"
    copied = run(app, "restore", "--file", str(archive), "--slug", copy_slug)
    assert copied.exit_code == 0, copied.output
    copy = _tenant_by_slug(copy_slug)
    assert copy["id"] != tenant.id
    copy_tenant = replace(tenant, id=copy["id"], slug=copy_slug, schema_name=copy["schema_name"])
    _assert_served_from_a_worker(
        client, database, settings, made, rows, copy["id"], copy["schema_name"], worker_token(copy_tenant)
    )
    # The original did not change: its rows plus the one written after the restore.
    assert len(table_rows(owner_engine(), tenant.schema_name, "clients")) == len(rows) + 1


def test_an_archive_of_a_newer_postgresql_is_refused_before_anything_is_written(app, database):
    """The embedded server of the default tests runs a newer major than the cluster's 15:
    pg_restore 15 cannot read its dump, and PostgreSQL does not go back a major version. The
    restore refuses it in one line naming both versions; no registry row, no schema."""
    work = Path(tempfile.mkdtemp(prefix="citus-embedded-archive-"))
    embedded = embedded_postgres.start(work / "pgdata", cleanup="delete")
    try:
        urls = {
            "runtime": embedded.runtime_url,
            "owner": embedded.owner_url,
            "superuser": embedded.superuser_url,
        }
        with psycopg.connect(embedded.superuser_url) as conn:
            major = conn.info.server_version // 10000
        if major <= 15:
            pytest.skip(f"the embedded server is PostgreSQL {major}, not newer than the cluster's 15")
        made, _, archive = _export_from(urls, work)
    finally:
        embedded.server.cleanup()
    try:
        refused = run(app, "restore", "--file", str(archive))
        assert refused.exit_code == 1
        assert (
            f"the archive was dumped from PostgreSQL {major}; this server runs PostgreSQL 15"
            in refused.output
        )
        assert len(refused.output.strip().splitlines()) == 1
        with owner_engine().connect() as connection:
            found = connection.execute(select(tenants_table.c.id).where(tenants_table.c.id == made.tenant.id))
            assert found.first() is None
        assert not schema_exists(owner_engine(), made.tenant.schema_name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
