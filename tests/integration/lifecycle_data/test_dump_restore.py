"""Operator archives: export -> purge -> restore gives back the same rows and media, as the
same tenant or as a new one; a damaged or mismatched archive fails with one clear line."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
from sqlalchemy import func, select

from backend.infrastructure import migrations
from backend.infrastructure.archives import TarTenantArchiver
from backend.infrastructure.sql.identity import memberships, users
from backend.infrastructure.sql.tenants import tenants
from backend.infrastructure.storage import LocalMediaStorage
from tests.integration.faults.killing import orphans
from tests.integration.lifecycle_data.conftest import (
    audit_events_of,
    count_rows,
    registry_row,
    schema_exists,
    table_rows,
    user_exists,
)
from tests.owner import owner_engine


def run(app, *args):
    return app.test_cli_runner().invoke(args=["tenants", *args])


def media_checksums(media_root, tenant_id) -> dict[str, str]:
    folder = media_root / str(tenant_id)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def emails_of(engine, tenant_id) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(users.c.email, memberships.c.role)
            .join(memberships, memberships.c.user_id == users.c.id)
            .where(memberships.c.tenant_id == tenant_id)
            .order_by(users.c.email)
        )
        return [tuple(row) for row in rows]


@pytest.fixture()
def archive_path(settings, request):
    path = settings.exports_dir / f"{request.node.name}.tar"
    yield path
    path.unlink(missing_ok=True)


def test_export_purge_restore_gives_the_same_tenant_back(
    app, client, worker_token, owner, media_root, workspace, archive_path
):
    ws = workspace()
    tenant = ws.tenant
    rows_before = table_rows(owner, tenant.schema_name, "clients")
    media_before = media_checksums(media_root, tenant.id)
    people_before = emails_of(owner, tenant.id)

    result = run(app, "export", "--slug", tenant.slug, "--out", str(archive_path))
    assert result.exit_code == 0, result.output
    assert archive_path.stat().st_mode & 0o777 == 0o600
    assert run(app, "delete", "--slug", tenant.slug, "--now").exit_code == 0
    assert not schema_exists(owner, tenant.schema_name)

    result = run(app, "restore", "--file", str(archive_path))
    assert result.exit_code == 0, result.output
    row = registry_row(owner, tenant.id)
    assert (row["slug"], row["name"], row["status"]) == (tenant.slug, tenant.name, "active")
    assert row["deleted_at"] is None and row["deletion_due_at"] is None
    assert row["schema_version"] == migrations.head_revision("tenant")
    assert table_rows(owner, tenant.schema_name, "clients") == rows_before
    assert media_checksums(media_root, tenant.id) == media_before
    assert emails_of(owner, tenant.id) == people_before
    assert user_exists(owner, ws.worker_id)
    # The runtime role can serve the restored schema (grants re-applied).
    listed = client.get("/api/v1/clients", headers=worker_token(tenant))
    assert listed.status_code == 200
    assert sorted(c["id"] for c in listed.json) == sorted(str(row[0]) for row in rows_before)
    events = [event for event, _ in audit_events_of(owner, tenant.id)]
    assert "export.dumped" in events and "export.restored" in events
    assert events.index("tenant.purged") < events.index("export.restored")


def test_restore_as_a_new_tenant_next_to_the_original(app, owner, media_root, workspace, archive_path):
    ws = workspace()
    tenant = ws.tenant
    users_before = count_rows(owner, users)
    with owner.begin() as connection:  # the workspace requires a second factor of its workers
        connection.execute(
            tenants.update().where(tenants.c.id == tenant.id).values(mfa_required_for_workers=True)
        )
    assert run(app, "export", "--slug", tenant.slug, "--out", str(archive_path)).exit_code == 0

    new_slug = f"copy-{tenant.slug}"
    result = run(app, "restore", "--file", str(archive_path), "--slug", new_slug)
    assert result.exit_code == 0, result.output
    with owner.connect() as connection:
        copy = connection.execute(select(tenants).where(tenants.c.slug == new_slug)).mappings().one()
    assert copy["id"] != tenant.id and copy["schema_name"] != tenant.schema_name
    assert copy["mfa_required_for_workers"] is True  # the copy keeps the requirement
    assert table_rows(owner, copy["schema_name"], "clients") == table_rows(
        owner, tenant.schema_name, "clients"
    )
    assert media_checksums(media_root, copy["id"]) == media_checksums(media_root, tenant.id)
    # Same people, matched by email: nobody was created twice.
    assert count_rows(owner, users) == users_before
    assert emails_of(owner, copy["id"]) == emails_of(owner, tenant.id)
    # The original is untouched.
    assert registry_row(owner, tenant.id)["status"] == "active"
    assert count_rows(owner, memberships, tenant_id=tenant.id) == 4


def test_an_export_that_fails_midway_leaves_no_file_behind(runtime, workspace, tmp_path):
    class BrokenDisk(LocalMediaStorage):
        def open(self, tenant_id, name):
            raise OSError("disk unavailable")

    ws = workspace()
    archiver = TarTenantArchiver(
        engine=owner_engine(),
        url=runtime.settings.owner_database_url,
        storage=BrokenDisk(runtime.settings.media_dir),
        pg_bin_dir=runtime.settings.pg_bin_dir,
    )
    out = tmp_path / "exports" / "broken.tar"
    with pytest.raises(OSError, match="disk unavailable"):
        archiver.dump(ws.tenant, out)
    assert list(out.parent.iterdir()) == []  # neither the archive nor a partial one


def test_restore_over_a_live_tenant_is_refused(app, owner, workspace, archive_path):
    ws = workspace()
    assert run(app, "export", "--slug", ws.tenant.slug, "--out", str(archive_path)).exit_code == 0
    with owner.connect() as connection:
        count_before = connection.execute(select(func.count()).select_from(tenants)).scalar_one()
    result = run(app, "restore", "--file", str(archive_path))
    assert result.exit_code != 0
    assert "tenant_exists" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with owner.connect() as connection:
        assert connection.execute(select(func.count()).select_from(tenants)).scalar_one() == count_before


def test_a_taken_slug_is_refused(app, workspace, make_tenant, archive_path):
    ws, holder = workspace(), make_tenant()
    assert run(app, "export", "--slug", ws.tenant.slug, "--out", str(archive_path)).exit_code == 0
    result = run(app, "restore", "--file", str(archive_path), "--slug", holder.slug)
    assert result.exit_code != 0 and "slug_taken" in result.output


def test_a_damaged_archive_is_refused(app, owner, workspace, archive_path, tmp_path):
    ws = workspace()
    assert run(app, "export", "--slug", ws.tenant.slug, "--out", str(archive_path)).exit_code == 0
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(archive_path) as source, tarfile.open(damaged, "w") as target:
        for member in source:
            data = source.extractfile(member).read()
            if member.name.startswith("media/"):
                data = bytes([data[0] ^ 1]) + data[1:]
            target.addfile(member, io.BytesIO(data))
    result = run(app, "restore", "--file", str(damaged), "--slug", f"damaged-{ws.tenant.slug}")
    assert result.exit_code != 0
    assert "damaged" in result.output
    with owner.connect() as connection:
        assert (
            connection.execute(
                select(func.count()).select_from(tenants).where(tenants.c.slug == f"damaged-{ws.tenant.slug}")
            ).scalar_one()
            == 0
        )


def test_restore_of_a_missing_file_fails_with_one_line(app, tmp_path):
    result = run(app, "restore", "--file", str(tmp_path / "nothing.tar"))
    assert result.exit_code != 0
    assert "no such file" in result.output


def test_tools_of_another_major_version_give_one_clear_line(app, runtime, workspace, tmp_path):
    """A pg_dump that reports another major version is refused before it runs."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        script = fake / tool
        script.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 12.22'\n")
        script.chmod(0o755)
    ws = workspace()
    original = runtime.settings
    runtime.settings = original.model_copy(update=dict(pg_bin_dir=fake))
    try:
        result = run(app, "export", "--slug", ws.tenant.slug, "--out", str(tmp_path / "x.tar"))
    finally:
        runtime.settings = original
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "is 12" in lines[0] and "PG_BIN_DIR" in lines[0]
    assert not (tmp_path / "x.tar").exists()


def test_an_archive_from_an_unknown_schema_revision_is_refused(app, workspace, archive_path, tmp_path):
    ws = workspace()
    assert run(app, "export", "--slug", ws.tenant.slug, "--out", str(archive_path)).exit_code == 0
    newer = tmp_path / "newer.tar"
    with tarfile.open(archive_path) as source, tarfile.open(newer, "w") as target:
        for member in source:
            data = source.extractfile(member).read()
            if member.name == "manifest.json":
                data = data.replace(b'"schema_version": "', b'"schema_version": "future-')
                member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    result = run(app, "restore", "--file", str(newer), "--slug", f"newer-{ws.tenant.slug}")
    assert result.exit_code != 0
    assert "unknown to this release" in result.output


def with_manifest(source_path, target_path, **changes) -> None:
    """A copy of an archive whose manifest says otherwise (the manifest carries no checksum of
    itself: the members' checksums are in it)."""
    with tarfile.open(source_path) as source, tarfile.open(target_path, "w") as target:
        for member in source:
            data = source.extractfile(member).read()
            if member.name == "manifest.json":
                data = json.dumps({**json.loads(data), **changes}).encode()
                member.size = len(data)
            target.addfile(member, io.BytesIO(data))


def test_an_archive_of_a_newer_postgresql_major_is_refused_in_one_line(
    app, runtime, owner, workspace, archive_path, tmp_path
):
    """A dump of PostgreSQL 18 restored into 15: refused before pg_restore runs (whose own
    message would be `unsupported version (1.16) in file header`), nothing restored."""
    ws = workspace()
    assert run(app, "export", "--slug", ws.tenant.slug, "--out", str(archive_path)).exit_code == 0
    server_major = owner_engine().dialect.server_version_info[0]
    orphans_before = orphans(owner)[0]
    newer = tmp_path / "newer-major.tar"
    with_manifest(archive_path, newer, server_major=server_major + 1)
    slug = f"major-{ws.tenant.slug}"
    result = run(app, "restore", "--file", str(newer), "--slug", slug)
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert f"PostgreSQL {server_major + 1}" in line and f"PostgreSQL {server_major}" in line
    assert "file header" not in line
    with owner.connect() as connection:
        count = select(func.count()).select_from(tenants).where(tenants.c.slug == slug)
        assert connection.execute(count).scalar_one() == 0
    assert orphans(owner)[0] == orphans_before, "no schema left without its registry row"
    # the same archive written by an older major restores (pg_restore reads older dumps)
    older = tmp_path / "older-major.tar"
    with_manifest(archive_path, older, server_major=server_major - 1)
    assert run(app, "restore", "--file", str(older), "--slug", slug).exit_code == 0
    with owner.connect() as connection:
        assert connection.execute(count).scalar_one() == 1


def test_a_malformed_server_major_is_refused(app, workspace, archive_path, tmp_path):
    ws = workspace()
    assert run(app, "export", "--slug", ws.tenant.slug, "--out", str(archive_path)).exit_code == 0
    odd = tmp_path / "odd-major.tar"
    with_manifest(archive_path, odd, server_major="eighteen")
    result = run(app, "restore", "--file", str(odd), "--slug", f"odd-{ws.tenant.slug}")
    assert result.exit_code == 1 and "server_major" in result.output


def test_a_restored_copy_with_soft_deleted_media_is_noted_for_the_retention_run(
    app, client, runtime, owner, make_tenant, worker_token, archive_path
):
    """The restore brings the trash back with the schema: the registry notes it, or the retention
    run (which opens only noted tenants) would never purge those media."""
    from datetime import UTC, datetime, timedelta

    from tests.integration.lifecycle_data.test_retention import media_items
    from tests.integration.lifecycle_data.test_scheduled_work import trash_note

    tenant = make_tenant()
    deleted_at = datetime.now(UTC) - timedelta(days=3)
    media_items(client, runtime, tenant, worker_token(tenant), [deleted_at, None])
    assert run(app, "export", "--slug", tenant.slug, "--out", str(archive_path)).exit_code == 0
    result = run(app, "restore", "--file", str(archive_path), "--slug", f"trash-{tenant.slug}")
    assert result.exit_code == 0, result.output
    with owner.connect() as connection:
        copy_id = connection.execute(
            select(tenants.c.id).where(tenants.c.slug == f"trash-{tenant.slug}")
        ).scalar_one()
    assert trash_note(owner, copy_id) == deleted_at
