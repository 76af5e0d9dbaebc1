"""The worker's export: a streamed zip of every table from one snapshot, the media files and
a manifest whose counts and checksums match the files."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import uuid
import zipfile
from datetime import datetime

from psycopg import sql
from sqlalchemy import insert, text

from backend.core.db import set_tenant_search_path
from backend.infrastructure import migrations
from backend.infrastructure.sql import tenant_metadata
from backend.infrastructure.sql.clients import clients
from backend.infrastructure.sql.privileges import grant_tenant
from tests.integration.domain.conftest import PDF, png_bytes
from tests.integration.lifecycle_data.conftest import audit_events_of, write_media
from tests.integration.lifecycle_data.test_export_format import upload
from tests.owner import owner_engine

URL = "/api/v1/export"


def add_notes_table(runtime, tenant, rows: int, body_bytes: int = 20) -> None:
    """A tenant table this code has never heard of: the export finds it in the catalog."""
    with owner_engine().begin() as connection:
        statement = sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, body text NOT NULL)").format(
            sql.Identifier(tenant.schema_name, "zz_notes")
        )
        connection.exec_driver_sql(statement.as_string(None))
        grant_tenant(connection, tenant.schema_name, runtime.runtime_role)
        set_tenant_search_path(connection, tenant.schema_name)
        for start in range(0, rows, 500):
            values = [
                {"id": i, "body": os.urandom(body_bytes // 2).hex() + ',"quoted"\nline'}
                for i in range(start + 1, min(rows, start + 500) + 1)
            ]
            connection.execute(text("INSERT INTO zz_notes (id, body) VALUES (:id, :body)"), values)


def add_clients(engine, tenant, names) -> None:
    with engine.begin() as connection:
        set_tenant_search_path(connection, tenant.schema_name)
        for name in names:
            connection.execute(insert(clients).values(id=uuid.uuid4(), name=name))


def open_zip(data: bytes) -> tuple[zipfile.ZipFile, dict]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    return archive, json.loads(archive.read("manifest.json"))


def csv_rows(archive: zipfile.ZipFile, name: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(archive.read(name).decode())))
    return rows[1:]  # header line


def test_export_holds_every_table_media_and_a_matching_manifest(
    client, runtime, make_tenant, worker_token, settings, owner
):
    tenant, other = make_tenant(), make_tenant()
    add_clients(owner, tenant, ["Ada", 'Grace, "the" admiral\nsecond line'])
    add_clients(owner, other, ["Other-tenant-secret"])
    add_notes_table(runtime, tenant, rows=5)
    headers = worker_token(tenant)
    [owner_of_files] = [c for c in client.get("/api/v1/clients", headers=headers).json if c["name"] == "Ada"]
    photo = upload(client, headers, owner_of_files["id"], png_bytes(4, 4), "photo.png")
    scan = upload(client, headers, owner_of_files["id"], PDF, "scan.pdf")
    # Files without a media row (a partial upload, a stray file) are not the workspace's data.
    write_media(settings.media_dir, tenant, ".f3.part", b"partial upload")
    write_media(settings.media_dir, tenant, "stray", b"no row names this file")
    write_media(settings.media_dir, other, "other-file", b"Other-tenant-secret file")

    response = client.get(URL, headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and tenant.slug in disposition
    archive, manifest = open_zip(response.data)
    response.close()  # frees the export slot (EXPORT_MAX_CONCURRENT per app)

    assert manifest["tenant"]["id"] == str(tenant.id)
    assert manifest["schema_version"] == migrations.head_revision("tenant")
    assert manifest["exported_at"]
    files = {entry["path"]: entry for entry in manifest["files"]}
    tables = {f"tables/{name}.csv" for name in tenant_metadata.tables}
    media = {f"media/{photo['id']}.png": photo, f"media/{scan['id']}.pdf": scan}
    described = {"README.md", "tables/csv-metadata.json"}
    assert set(files) == tables | described | {"tables/zz_notes.csv", *media}
    assert sorted(archive.namelist()) == sorted([*files, "manifest.json"])
    for path, entry in files.items():
        data = archive.read(path)
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
    for path, item in media.items():
        assert files[path]["sha256"] == item["sha256"]
    assert files["tables/clients.csv"]["rows"] == len(csv_rows(archive, "tables/clients.csv")) == 2
    assert files["tables/zz_notes.csv"]["rows"] == len(csv_rows(archive, "tables/zz_notes.csv")) == 5
    names = sorted(row[1] for row in csv_rows(archive, "tables/clients.csv"))
    assert names == ["Ada", 'Grace, "the" admiral\nsecond line']
    # Nothing of another tenant, in any file.
    for name in archive.namelist():
        assert b"Other-tenant-secret" not in archive.read(name)
    assert ("export.downloaded", "success") in audit_events_of(owner, tenant.id)
    assert ("export.downloaded", "success") not in audit_events_of(owner, other.id)


def test_export_instants_are_written_as_the_api_writes_them(client, make_tenant, worker_token, owner):
    """ISO 8601 in UTC with the offset, the same instants GET /clients answers: not PostgreSQL's
    text form (`2026-01-31 09:30:00.123+00`). PostgreSQL drops trailing zeros of the fraction."""
    tenant = make_tenant()
    add_clients(owner, tenant, ["Ada"])
    headers = worker_token(tenant)
    listed = client.get("/api/v1/clients", headers=headers).json
    response = client.get(URL, headers=headers)
    archive, _ = open_zip(response.data)
    response.close()  # frees the export slot
    rows = list(csv.DictReader(io.StringIO(archive.read("tables/clients.csv").decode())))
    for row in rows:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?\+00:00", row["created_at"])
    instants = [
        (r["id"], datetime.fromisoformat(r["created_at"]), datetime.fromisoformat(r["updated_at"]))
        for r in rows
    ]
    assert instants == [
        (c["id"], datetime.fromisoformat(c["created_at"]), datetime.fromisoformat(c["updated_at"]))
        for c in listed
    ]


def test_export_is_one_snapshot_under_concurrent_writes(client, runtime, make_tenant, worker_token, owner):
    tenant = make_tenant()
    add_clients(owner, tenant, [f"client {i}" for i in range(3)])
    add_notes_table(runtime, tenant, rows=4)

    response = client.get(URL, headers=worker_token(tenant), buffered=False)
    assert response.status_code == 200
    chunks = iter(response.response)
    received = [next(chunks)]  # the snapshot is taken before the first byte leaves
    # Committed while the export runs, in both tables (one before, one after the cursor).
    with owner.begin() as connection:
        set_tenant_search_path(connection, tenant.schema_name)
        connection.execute(insert(clients).values(id=uuid.uuid4(), name="late"))
        connection.execute(text("INSERT INTO zz_notes (id, body) VALUES (100, 'late')"))
        connection.execute(text("DELETE FROM zz_notes WHERE id = 1"))
    received.extend(chunks)
    response.close()

    archive, manifest = open_zip(b"".join(received))
    files = {entry["path"]: entry for entry in manifest["files"]}
    assert files["tables/clients.csv"]["rows"] == len(csv_rows(archive, "tables/clients.csv")) == 3
    notes = csv_rows(archive, "tables/zz_notes.csv")
    assert files["tables/zz_notes.csv"]["rows"] == len(notes) == 4
    assert sorted(int(row[0]) for row in notes) == [1, 2, 3, 4]


def test_export_streams_in_bounded_chunks(client, runtime, make_tenant, worker_token):
    tenant = make_tenant()
    add_notes_table(runtime, tenant, rows=1500, body_bytes=1500)  # ~2.3 MB of CSV

    response = client.get(URL, headers=worker_token(tenant), buffered=False)
    sizes, data = [], []
    for chunk in response.response:
        sizes.append(len(chunk))
        data.append(chunk)
    response.close()
    assert len(sizes) > 3
    assert max(sizes) <= 600 * 1024
    archive, manifest = open_zip(b"".join(data))
    files = {entry["path"]: entry for entry in manifest["files"]}
    assert files["tables/zz_notes.csv"]["rows"] == len(csv_rows(archive, "tables/zz_notes.csv")) == 1500


def test_an_abandoned_download_is_audited(client, runtime, make_tenant, worker_token, owner):
    tenant = make_tenant()
    add_notes_table(runtime, tenant, rows=1500, body_bytes=1500)
    response = client.get(URL, headers=worker_token(tenant), buffered=False)
    next(iter(response.response))
    response.close()
    assert ("export.downloaded", "aborted") in audit_events_of(owner, tenant.id)


def test_clients_cannot_export(client, make_tenant, client_token):
    tenant = make_tenant()
    _, headers = client_token(tenant)
    response = client.get(URL, headers=headers)
    assert response.status_code == 403
    assert response.json == {"detail": "forbidden"}


def test_export_needs_a_token(client):
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json["detail"] == "missing_token"


def test_exports_beyond_the_concurrency_limit_are_told_to_retry(client, runtime, make_tenant, worker_token):
    tenant = make_tenant()
    add_notes_table(runtime, tenant, rows=1500, body_bytes=1500)
    limit = runtime.settings.export_max_concurrent
    running = []
    for _ in range(limit):
        response = client.get(URL, headers=worker_token(tenant), buffered=False)
        next(iter(response.response))
        running.append(response)
    refused = client.get(URL, headers=worker_token(tenant))
    assert refused.status_code == 429
    assert refused.json["detail"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0
    # Last opened, first closed: the test client runs both streams in this one thread, and each
    # holds its request context pushed until it closes (a server runs each in its own).
    for response in reversed(running):
        response.close()
    again = client.get(URL, headers=worker_token(tenant))
    assert again.status_code == 200
    again.close()
