"""Operator archives: one tar file that can bring a tenant back.

Members, in order: `schema.dump` (pg_dump custom format of the tenant schema), `shared.json`
(the tenant's registry row, its memberships and their users, password hashes included: an
archive is as sensitive as a database backup and is written with mode 0600), `media/...`
(the tenant's files), and `manifest.json` last, with a sha256 and a size per member.

The schema dump and the shared rows come from one snapshot: the archiver's transaction
exports its snapshot and pg_dump runs inside it (`pg_dump --snapshot`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from psycopg import sql
from sqlalchemy import select, text
from sqlalchemy.engine import Connection, Engine

from backend.domain.identity import Role
from backend.domain.lifecycle import (
    ArchiveContents,
    ArchivedMembership,
    ArchivedUser,
    ArchiveSummary,
)
from backend.domain.tenants import Plan, Tenant, TenantStatus
from backend.infrastructure.pg_tools import dump_schema, find_tools
from backend.infrastructure.sql.identity import memberships, users
from backend.infrastructure.sql.tenants import tenants
from backend.infrastructure.storage import LocalMediaStorage, UnsafeName, safe_relative, write_into_place

ARCHIVE_FORMAT = "tenant-archive"
ARCHIVE_VERSION = 1
FIXED_MEMBERS = ("schema.dump", "shared.json")
CHUNK = 1024 * 1024


class ArchiveError(RuntimeError):
    """An archive that cannot be restored; the message is one line."""


def _json_default(value):
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


class _HashingReader:
    """Reads through to a file while hashing what passes (tarfile pulls the member data)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.digest.update(data)
        return data


def _add(tar: tarfile.TarFile, name: str, handle: BinaryIO, size: int) -> dict:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(datetime.now().timestamp())
    reader = _HashingReader(handle)
    tar.addfile(info, reader)
    return {"sha256": reader.digest.hexdigest(), "bytes": size}


def _shared_rows(connection: Connection, tenant_id: uuid.UUID) -> dict:
    tenant = connection.execute(select(tenants).where(tenants.c.id == tenant_id)).mappings().one()
    member_rows = connection.execute(
        select(memberships.c.user_id, memberships.c.role, memberships.c.client_id)
        .where(memberships.c.tenant_id == tenant_id)
        .order_by(memberships.c.created_at, memberships.c.id)
    ).mappings()
    user_rows = connection.execute(
        select(users)
        .where(users.c.id.in_(select(memberships.c.user_id).where(memberships.c.tenant_id == tenant_id)))
        .order_by(users.c.id)
    ).mappings()
    return {
        "tenant": dict(tenant),
        "memberships": [dict(row) for row in member_rows],
        "users": [dict(row) for row in user_rows],
    }


def _schema_version(connection: Connection, schema_name: str) -> str | None:
    statement = sql.SQL("SELECT version_num FROM {}").format(sql.Identifier(schema_name, "alembic_version"))
    return connection.exec_driver_sql(statement.as_string(None)).scalar_one_or_none()


class TarTenantArchiver:
    def __init__(
        self, *, engine: Engine, url: str, storage: LocalMediaStorage, pg_bin_dir: Path | None
    ) -> None:
        self._engine = engine  # owner role
        self._url = url
        self._storage = storage
        self._pg_bin_dir = pg_bin_dir

    def dump(self, tenant: Tenant, out: Path) -> ArchiveSummary:
        out = Path(out).absolute()
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".dump-") as work:
            dump_path = Path(work, "schema.dump")
            shared, schema_version, server_major = self._dump_in_snapshot(tenant, dump_path)
            shared_bytes = json.dumps(shared, default=_json_default, indent=2).encode()
            with write_into_place(out) as raw, tarfile.open(fileobj=raw, mode="w") as tar:
                files = {}
                with open(dump_path, "rb") as handle:
                    files["schema.dump"] = _add(tar, "schema.dump", handle, dump_path.stat().st_size)
                files["shared.json"] = _add(tar, "shared.json", io.BytesIO(shared_bytes), len(shared_bytes))
                media_count = self._add_media(tar, tenant.id, files)
                manifest = {
                    "format": ARCHIVE_FORMAT,
                    "format_version": ARCHIVE_VERSION,
                    "tenant_id": str(tenant.id),
                    "schema_name": tenant.schema_name,
                    "schema_version": schema_version,
                    "server_major": server_major,
                    "created_at": datetime.now().astimezone().isoformat(),
                    "files": files,
                }
                body = json.dumps(manifest, indent=2).encode()
                _add(tar, "manifest.json", io.BytesIO(body), len(body))
        return ArchiveSummary(
            path=str(out),
            bytes=out.stat().st_size,
            schema_version=schema_version,
            media_files=media_count,
            members=len(files) + 1,
        )

    def _dump_in_snapshot(self, tenant: Tenant, dump_path: Path) -> tuple[dict, str | None, int]:
        with self._engine.connect() as connection:
            server_major = connection.dialect.server_version_info[0]
            tools = find_tools(server_major, self._pg_bin_dir)
            connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                shared = _shared_rows(connection, tenant.id)
                version = _schema_version(connection, tenant.schema_name)
                # The transaction stays open: pg_dump reads the very same snapshot.
                dump_schema(tools, self._url, tenant.schema_name, dump_path, snapshot)
        return shared, version, server_major

    def _add_media(self, tar: tarfile.TarFile, tenant_id: uuid.UUID, files: dict) -> int:
        count = 0
        for name in self._storage.files(tenant_id):
            try:
                handle = self._storage.open(tenant_id, name)
            except FileNotFoundError:
                continue
            with handle:
                files[f"media/{name}"] = _add(tar, f"media/{name}", handle, os.fstat(handle.fileno()).st_size)
            count += 1
        return count


class OpenedArchive:
    """An archive extracted to a staging directory and verified against its manifest."""

    def __init__(
        self,
        staging: Path,
        contents: ArchiveContents,
        storage: LocalMediaStorage,
        server_major: int | None = None,
    ) -> None:
        self._staging = staging
        self.contents = contents
        # The PostgreSQL major version the dump was written by (manifest `server_major`).
        self.server_major = server_major
        self.dump_path = staging / "schema.dump"
        self._storage = storage

    def install_media(self, tenant_id: uuid.UUID) -> int:
        staged = self._staging / "media"
        if not staged.is_dir():
            return 0
        return self._storage.install(tenant_id, staged)

    def remove_media(self, tenant_id: uuid.UUID) -> None:
        self._storage.delete_tenant(tenant_id)


@contextmanager
def open_archive(path: Path, *, storage: LocalMediaStorage, staging_root: Path) -> Iterator[OpenedArchive]:
    """Extract and verify an archive; the staging directory is removed afterwards."""
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=staging_root, prefix=".restore-"))
    try:
        manifest = _extract(Path(path), staging)
        yield OpenedArchive(staging, _contents(staging, manifest), storage, _server_major(path, manifest))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract(path: Path, staging: Path) -> dict:
    if not path.is_file():
        raise ArchiveError(f"{path}: no such file")
    seen: dict[str, dict] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                seen[member.name] = _extract_member(tar, member, staging)
    except (tarfile.TarError, EOFError) as error:
        raise ArchiveError(f"{path}: not a readable archive ({error})") from None
    try:
        manifest = json.loads((staging / "manifest.json").read_text())
    except (FileNotFoundError, ValueError):
        raise ArchiveError(f"{path}: no readable manifest.json") from None
    if manifest.get("format") != ARCHIVE_FORMAT or manifest.get("format_version") != ARCHIVE_VERSION:
        raise ArchiveError(f"{path}: not a {ARCHIVE_FORMAT} v{ARCHIVE_VERSION} archive")
    expected = manifest.get("files", {})
    seen.pop("manifest.json", None)
    if set(seen) != set(expected) or not set(FIXED_MEMBERS) <= set(seen):
        raise ArchiveError(f"{path}: members do not match the manifest")
    for name, facts in expected.items():
        if seen[name] != facts:
            raise ArchiveError(f"{path}: {name} is damaged (checksum or size differs)")
    return manifest


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, staging: Path) -> dict:
    name = member.name
    try:
        relative = safe_relative(name)
    except UnsafeName:
        raise ArchiveError(f"unsafe member name {name!r}") from None
    is_media = relative.parts[0] == "media" and len(relative.parts) > 1
    allowed = is_media or name in (*FIXED_MEMBERS, "manifest.json")
    if not member.isfile() or not allowed:
        raise ArchiveError(f"unexpected member {name!r}")
    target = staging.joinpath(*relative.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with tar.extractfile(member) as source, open(target, "xb") as sink:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            sink.write(chunk)
    return {"sha256": digest.hexdigest(), "bytes": size}


def _server_major(path: Path, manifest: dict) -> int | None:
    value = manifest.get("server_major")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ArchiveError(f"{path}: manifest server_major {value!r} is not a PostgreSQL major version")
    return value


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _contents(staging: Path, manifest: dict) -> ArchiveContents:
    shared = json.loads((staging / "shared.json").read_text())
    row = shared["tenant"]
    tenant = Tenant(
        id=uuid.UUID(row["id"]),
        slug=row["slug"],
        name=row["name"],
        schema_name=row["schema_name"],
        status=TenantStatus(row["status"]),
        plan=Plan(row["plan"]),
        trial_ends_at=_dt(row["trial_ends_at"]),
        created_at=_dt(row["created_at"]),
        schema_version=manifest.get("schema_version"),
    )
    previous = row.get("deletion_previous_status")
    return ArchiveContents(
        tenant=tenant,
        previous_status=TenantStatus(previous) if previous else None,
        schema_version=manifest.get("schema_version"),
        mfa_required_for_workers=bool(row.get("mfa_required_for_workers", False)),
        users=tuple(
            ArchivedUser(
                id=uuid.UUID(u["id"]),
                email=u["email"],
                name=u["name"],
                password_hash=u["password_hash"],
                verified_at=_dt(u["verified_at"]),
                created_at=_dt(u["created_at"]),
            )
            for u in shared["users"]
        ),
        memberships=tuple(
            ArchivedMembership(
                user_id=uuid.UUID(m["user_id"]),
                role=Role(m["role"]),
                client_id=uuid.UUID(m["client_id"]) if m["client_id"] else None,
            )
            for m in shared["memberships"]
        ),
    )
