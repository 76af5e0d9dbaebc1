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
from backend.domain.lifecycle import Actor
from backend.domain.tenants import TenantStatus
from backend.service import exports, tenants
from tests.unit.fakes import FakeMediaStorage, FakeRegistryUnitOfWork

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TABLES = {"appointments": [b"id\n", b"1\n2\n"], "clients": [b"id,name\n1,Ada\n"]}


class FakeSnapshot:
    def __init__(self) -> None:
        self.open = False

    def schema_version(self):
        return "r_head"

    def tables(self):
        return sorted(TABLES)

    def copy_csv(self, table):
        assert self.open, "tables are read inside the snapshot"
        yield from TABLES[table]
        return sum(chunk.count(b"\n") for chunk in TABLES[table]) - 1


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


def test_tables_then_media_then_a_manifest_with_counts_and_checksums(workspace):
    uow, tenant = workspace
    storage, snapshot, writer = FakeMediaStorage(), FakeSnapshot(), KeepingWriter()
    storage.save(tenant.id, "m1", [b"\x89PNG..."])
    body = b"".join(export(uow, storage, snapshot, writer, tenant.id))
    assert list(writer.members) == [
        "tables/appointments.csv",
        "tables/clients.csv",
        "media/m1",
        "manifest.json",
    ]
    assert writer.members["media/m1"][1] is False and writer.members["tables/clients.csv"][1] is True
    manifest = json.loads(writer.members["manifest.json"][0])
    files = {f["path"]: f for f in manifest["files"]}
    assert files["tables/appointments.csv"]["rows"] == 2 and files["tables/clients.csv"]["rows"] == 1
    assert "rows" not in files["media/m1"]
    assert files["media/m1"]["sha256"] == hashlib.sha256(b"\x89PNG...").hexdigest()
    assert manifest["schema_version"] == "r_head"
    [fields] = [f for e, f in uow.audit.events if e == "export.downloaded"]
    assert fields["outcome"] == "success" and fields["metadata"] == {"count": 3, "bytes": len(body)}


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
    def copy_csv(self, table):
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


class VanishingStorage(FakeMediaStorage):
    """Lists a file that is deleted before it is opened."""

    def files(self, tenant_id):
        return iter(["gone", *super().files(tenant_id)])


def test_a_media_file_deleted_during_the_export_is_left_out(workspace):
    uow, tenant = workspace
    storage, writer = VanishingStorage(), KeepingWriter()
    storage.save(tenant.id, "kept", [b"data"])
    b"".join(export(uow, storage, FakeSnapshot(), writer, tenant.id))
    assert "media/gone" not in writer.members and "media/kept" in writer.members
    manifest = json.loads(writer.members["manifest.json"][0])
    assert [f["path"] for f in manifest["files"] if f["path"].startswith("media/")] == ["media/kept"]


def test_a_purged_workspace_cannot_be_exported(workspace):
    uow, tenant = workspace
    uow.tenants.rows[tenant.id] = replace(tenant, status=TenantStatus.DELETED)
    with pytest.raises(NotFound):
        export(uow, FakeMediaStorage(), FakeSnapshot(), KeepingWriter(), tenant.id)
