"""The workspace export's rules on fakes (tests/unit/fakes.py, a fake snapshot and a writer
that keeps the members): every table from one snapshot, then the media, then a manifest with
row counts and checksums, and the download audited however it ends. The zip format and COPY
are tested in test_pg_tools_and_zip.py and tests/integration."""

from __future__ import annotations

import hashlib
import json
import uuid
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from backend.domain.errors import NotFound
from backend.domain.lifecycle import Actor, SourceColumn
from backend.domain.tenants import TenantStatus
from backend.service import export_format, exports, tenants
from tests.unit.fakes import FakeMediaStorage, FakeRegistryUnitOfWork

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TABLES = {"appointments": [b"id\n", b"1\n2\n"], "clients": [b"id,name\n1,Ada\n"]}
COLUMNS = {
    "appointments": [SourceColumn("id", "uuid", True)],
    "clients": [SourceColumn("id", "uuid", True), SourceColumn("name", "text", True)],
    "media": [SourceColumn("uploaded_by", "uuid", True), SourceColumn("uploaded_by_role", "text", True)],
}
PHOTO, SCAN, GONE = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


class FakeSnapshot:
    def __init__(self, media=()) -> None:
        self.open = False
        self.media = list(media)
        self.copied: dict[str, list] = {}

    def schema_version(self):
        return "r_head"

    def tables(self):
        return sorted(TABLES)

    def columns(self, table):
        assert self.open, "columns are read inside the snapshot"
        return COLUMNS[table]

    def copy_csv(self, table, columns=None):
        assert self.open, "tables are read inside the snapshot"
        self.copied[table] = columns
        yield from TABLES[table]
        return sum(chunk.count(b"\n") for chunk in TABLES[table]) - 1

    def media_files(self):
        assert self.open, "media rows are read inside the snapshot"
        return self.media


class KeepingWriter:
    def __init__(self) -> None:
        self.members: dict[str, tuple[bytes, bool]] = {}

    def stream(self, members):
        for member in members:
            data = b"".join(member.chunks)
            self.members[member.name] = (data, member.compress)
            yield data


def export(uow, storage, snapshot, writer, tenant_id):
    @contextmanager
    def open_snapshot(schema_name):
        snapshot.open = True
        try:
            yield snapshot
        finally:
            snapshot.open = False

    return exports.export_workspace(
        tenant_id=tenant_id,
        now=NOW,
        actor=Actor(user_id=uuid.uuid4(), role="worker"),
        uow_factory=lambda: uow,
        open_snapshot=open_snapshot,
        storage=storage,
        archive=writer,
    )


@pytest.fixture()
def workspace():
    uow = FakeRegistryUnitOfWork()
    tenant = tenants.provision_tenant(
        slug="acme", name="Acme", owner_email="ada@example.com", trial_days=14, now=NOW, uow=uow
    )
    return uow, tenant


def test_readme_tables_then_media_then_a_manifest_with_counts_and_checksums(workspace):
    uow, tenant = workspace
    storage, writer = FakeMediaStorage(), KeepingWriter()
    rows = [(PHOTO, "image/png"), (SCAN, "application/x-unknown"), (GONE, "image/png")]
    snapshot = FakeSnapshot(media=rows)
    storage.save(tenant.id, PHOTO, [b"\x89PNG..."])
    storage.save(tenant.id, SCAN, [b"%PDF?"])
    storage.save(tenant.id, "stray-file", [b"no row in the snapshot"])
    body = b"".join(export(uow, storage, snapshot, writer, tenant.id))
    # Media come from the snapshot's rows, named with the extension of their stored type
    # (`.bin` for a type without one); a file without a row, or a row whose file is gone, is not.
    assert list(writer.members) == [
        "README.md",
        "tables/csv-metadata.json",
        "tables/appointments.csv",
        "tables/clients.csv",
        f"media/{PHOTO}.png",
        f"media/{SCAN}.bin",
        "manifest.json",
    ]
    assert writer.members[f"media/{PHOTO}.png"][1] is False
    assert writer.members["tables/clients.csv"][1] is True
    assert snapshot.copied["clients"] == [("id", "id"), ("name", "name")]
    manifest = json.loads(writer.members["manifest.json"][0])
    files = {f["path"]: f for f in manifest["files"]}
    assert files["tables/appointments.csv"]["rows"] == 2 and files["tables/clients.csv"]["rows"] == 1
    assert "rows" not in files[f"media/{PHOTO}.png"] and "README.md" in files
    assert files[f"media/{PHOTO}.png"]["sha256"] == hashlib.sha256(b"\x89PNG...").hexdigest()
    assert manifest["schema_version"] == "r_head"
    [fields] = [f for e, f in uow.audit.events if e == "export.downloaded"]
    assert fields["outcome"] == "success" and fields["metadata"] == {"count": 6, "bytes": len(body)}


def test_media_columns_mean_what_the_api_means():
    """The API's `uploaded_by` is a role: the CSV's is too, the user id gets its own name."""
    table = export_format.plan_table("media", COLUMNS["media"])
    assert [(c.source, c.name) for c in table.columns] == [
        ("uploaded_by", "uploaded_by_user_id"),
        ("uploaded_by_role", "uploaded_by"),
    ]


def test_a_column_nobody_described_is_exported_and_says_so():
    table = export_format.plan_table("clients", [SourceColumn("shoe_size", "integer", False)])
    [column] = table.columns
    assert (column.name, column.datatype) == ("shoe_size", "integer")
    assert column.description == export_format.NOT_DESCRIBED


def test_media_extensions_come_from_the_stored_type_only():
    media_id = uuid.uuid4()
    assert export_format.media_path(media_id, "image/jpeg") == f"media/{media_id}.jpg"
    assert export_format.media_path(media_id, "text/html; x=../../etc") == f"media/{media_id}.bin"
    with pytest.raises(ValueError):
        export_format.media_path("../../etc/passwd", "image/png")


def test_an_abandoned_download_is_audited_as_aborted_and_closes_the_snapshot(workspace):
    uow, tenant = workspace
    snapshot = FakeSnapshot()
    stream = export(uow, FakeMediaStorage(), snapshot, KeepingWriter(), tenant.id)
    next(stream)
    assert snapshot.open
    stream.close()
    assert not snapshot.open
    [(_, fields)] = [(e, f) for e, f in uow.audit.events if e == "export.downloaded"]
    assert fields["outcome"] == "aborted" and fields["metadata"]["code"] == "client_disconnected"


def test_an_unknown_workspace_is_not_found_before_anything_streams():
    with pytest.raises(NotFound):
        export(FakeRegistryUnitOfWork(), FakeMediaStorage(), FakeSnapshot(), KeepingWriter(), uuid.uuid4())


class BrokenSnapshot(FakeSnapshot):
    def copy_csv(self, table, columns=None):
        yield b"id\n"
        raise ConnectionError("server closed the connection")


def test_a_download_that_fails_midway_is_audited_as_a_failure_with_the_error(workspace):
    uow, tenant = workspace
    snapshot = BrokenSnapshot()
    with pytest.raises(ConnectionError):
        b"".join(export(uow, FakeMediaStorage(), snapshot, KeepingWriter(), tenant.id))
    assert not snapshot.open
    [fields] = [f for e, f in uow.audit.events if e == "export.downloaded"]
    assert fields["outcome"] == "failure" and fields["metadata"]["code"] == "ConnectionError"


def test_a_media_file_purged_during_the_export_is_left_out(workspace):
    """The snapshot still has the row; the file went before the export reached it."""
    uow, tenant = workspace
    storage, writer = FakeMediaStorage(), KeepingWriter()
    kept, gone = uuid.uuid4(), uuid.uuid4()
    storage.save(tenant.id, kept, [b"data"])
    snapshot = FakeSnapshot(media=[(gone, "image/png"), (kept, "application/pdf")])
    b"".join(export(uow, storage, snapshot, writer, tenant.id))
    assert f"media/{gone}.png" not in writer.members and f"media/{kept}.pdf" in writer.members
    manifest = json.loads(writer.members["manifest.json"][0])
    assert [f["path"] for f in manifest["files"] if f["path"].startswith("media/")] == [f"media/{kept}.pdf"]


def test_a_purged_workspace_cannot_be_exported(workspace):
    uow, tenant = workspace
    uow.tenants.rows[tenant.id] = replace(tenant, status=TenantStatus.DELETED)
    with pytest.raises(NotFound):
        export(uow, FakeMediaStorage(), FakeSnapshot(), KeepingWriter(), tenant.id)
