"""Exports: the worker's download (a zip of every table, the media and a manifest) and the
operator's restorable archive (dump, and restore as the same or as a new tenant)."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from backend.domain.errors import Conflict, NotFound
from backend.domain.lifecycle import Actor, ArchiveMember, ArchiveSummary, restored_status
from backend.domain.tenants import Tenant, TenantStatus, schema_name_for, validate_slug
from backend.service import export_format
from backend.service.audit import record_tenant_event
from backend.service.ports import (
    ArchiveWriter,
    MediaStorage,
    RegistryUnitOfWork,
    RestoreUnitOfWork,
    TenantArchive,
    TenantArchiver,
    TenantSnapshot,
)

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "workspace-export"
MANIFEST_VERSION = 1
READ_CHUNK = 256 * 1024


@dataclass
class Progress:
    """What a streamed archive has written: its members' facts for the manifest, its size for
    the audit event."""

    files: list[dict] = field(default_factory=list)
    bytes_out: int = 0


def export_workspace(
    *,
    tenant_id: uuid.UUID,
    now: datetime,
    actor: Actor,
    uow_factory: Callable[[], RegistryUnitOfWork],
    open_snapshot: Callable[[str], AbstractContextManager[TenantSnapshot]],
    storage: MediaStorage,
    archive: ArchiveWriter,
) -> Iterator[bytes]:
    """Returns the workspace's export as a stream of zip bytes: one CSV per table, all from one
    snapshot, then the media files, then `manifest.json` with row counts and checksums. The
    tenant is looked up now; the stream is audited when it ends (or fails, or is abandoned)."""
    with uow_factory() as uow:
        tenant = uow.tenants.get(tenant_id)
    if tenant is None or tenant.status is TenantStatus.DELETED:
        raise NotFound()
    return _stream(tenant, now, actor, uow_factory, open_snapshot, storage, archive)


def _stream(tenant, now, actor, uow_factory, open_snapshot, storage, archive) -> Iterator[bytes]:
    def record(outcome: str, metadata: dict) -> None:
        with uow_factory() as uow:
            record_tenant_event(
                uow, "export.downloaded", tenant.id, actor, outcome=outcome, metadata=metadata
            )
            uow.commit()

    progress = Progress()
    members = _members(tenant, now, open_snapshot, storage, progress)
    return audited_stream(archive, members, progress, record, event="export.downloaded")


def audited_stream(
    archive: ArchiveWriter,
    members: Generator[ArchiveMember, None, None],
    progress: Progress,
    record: Callable[[str, dict], None],
    *,
    event: str,
) -> Iterator[bytes]:
    """The archive's bytes; when the stream ends (written, failed, or abandoned by the
    client), `record(outcome, metadata)` audits it with what was written."""
    outcome, code = "failure", None
    try:
        for data in archive.stream(members):
            progress.bytes_out += len(data)
            yield data
        outcome = "success"
    except GeneratorExit:
        outcome, code = "aborted", "client_disconnected"
        raise
    except Exception as error:
        code = type(error).__name__
        raise
    finally:
        members.close()  # ends the snapshot now, not when the generator is collected
        metadata = {"count": len(progress.files), "bytes": progress.bytes_out}
        if code:
            metadata["code"] = code
        try:
            record(outcome, metadata)
        except Exception:  # the response is under way: keep its own error, log this one
            log.exception("could not record %s", event)


def _members(tenant, now, open_snapshot, storage, progress: Progress) -> Generator[ArchiveMember, None, None]:
    """The zip's members in order, each pulled by the writer once the previous one is written:
    the README and the CSVW description, one CSV per table (all from one snapshot), the files
    of the media rows of that snapshot, then the manifest, built last from what was written."""
    with open_snapshot(tenant.schema_name) as snapshot:
        schema_version = snapshot.schema_version()
        tables = [export_format.plan_table(name, snapshot.columns(name)) for name in snapshot.tables()]
        readme = export_format.readme(slug=tenant.slug, exported_at=now, tables=tables)
        yield ArchiveMember(export_format.README, recorded(export_format.README, _once(readme), progress))
        metadata = export_format.csvw_metadata(tables)
        name = export_format.CSVW_METADATA
        yield ArchiveMember(name, recorded(name, _once(metadata), progress))
        for table in tables:
            columns = [(column.source, column.name) for column in table.columns]
            rows = snapshot.copy_csv(table.name, columns)
            yield ArchiveMember(table.path, recorded(table.path, rows, progress))
        media_files = snapshot.media_files()
    for media_id, content_type in media_files:
        try:
            handle = storage.open(tenant.id, media_id)
        except FileNotFoundError:  # purged since the snapshot: not part of the export
            continue
        name = export_format.media_path(media_id, content_type)
        with handle:
            yield ArchiveMember(name, recorded(name, read_chunks(handle), progress), compress=False)
    manifest = _manifest(tenant, schema_version, now, progress.files)
    yield ArchiveMember("manifest.json", [json.dumps(manifest, indent=2).encode()])


def _once(data: bytes) -> Generator[bytes, None, None]:
    yield data


def read_chunks(handle: BinaryIO) -> Generator[bytes, None, None]:
    while chunk := handle.read(READ_CHUNK):
        yield chunk


def recorded(
    name: str, source: Iterator[bytes] | Generator[bytes, None, int | None], progress: Progress
) -> Generator[bytes, None, None]:
    """Passes `source` through and, once it is exhausted, records the member's size and
    checksum (and the row count a table's COPY returns) for the manifest."""
    digest, size = hashlib.sha256(), 0
    while True:
        try:
            chunk = next(source)
        except StopIteration as done:
            rows = done.value
            break
        digest.update(chunk)
        size += len(chunk)
        yield chunk
    facts = {"path": name, "bytes": size, "sha256": digest.hexdigest()}
    if rows is not None:
        facts["rows"] = rows
    progress.files.append(facts)


def _manifest(tenant: Tenant, schema_version: str | None, now: datetime, files: list[dict]) -> dict:
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "tenant": {"id": str(tenant.id), "slug": tenant.slug, "name": tenant.name},
        "schema_version": schema_version,
        "exported_at": now.isoformat(),
        "snapshot": "one REPEATABLE READ READ ONLY transaction for every table",
        "files": files,
    }


def dump_tenant(
    *,
    slug: str,
    out: Path,
    actor: Actor,
    uow_factory: Callable[[], RegistryUnitOfWork],
    archiver: TenantArchiver,
) -> ArchiveSummary:
    """Writes a restorable archive of one tenant (schema dump, its shared rows, its media)."""
    with uow_factory() as uow:
        tenant = uow.tenants.get_by_slug(slug)
    if tenant is None or tenant.status is TenantStatus.DELETED:
        raise NotFound("not_found", f"no tenant {slug!r}")
    try:
        summary = archiver.dump(tenant, out)
    except Exception as error:
        with uow_factory() as uow:
            record_tenant_event(
                uow, "export.dumped", tenant.id, actor, outcome="failure",
                metadata={"code": type(error).__name__},
            )  # fmt: skip
            uow.commit()
        raise
    with uow_factory() as uow:
        metadata = {"bytes": summary.bytes, "count": summary.media_files}
        metadata["schema_version"] = summary.schema_version
        record_tenant_event(uow, "export.dumped", tenant.id, actor, metadata=metadata)
        uow.commit()
    return summary


@dataclass(frozen=True)
class RestoreResult:
    tenant: Tenant
    media_files: int
    users_created: int
    users_matched: int


def restore_tenant(
    *,
    archive: TenantArchive,
    new_slug: str | None,
    now: datetime,
    actor: Actor,
    uow_factory: Callable[[], RestoreUnitOfWork],
) -> RestoreResult:
    """Brings an archived tenant back in one transaction: as itself (its id, schema and slug,
    over its tombstone) or, with `new_slug`, as a new tenant with a new id and schema. Users
    are matched by email; the schema is migrated to head."""
    contents = archive.contents
    source = contents.tenant
    if new_slug is not None:
        tenant_id, slug, created_at = uuid.uuid4(), validate_slug(new_slug), now
    else:
        tenant_id, slug, created_at = source.id, source.slug, source.created_at
    target = Tenant(
        id=tenant_id,
        slug=slug,
        name=source.name,
        schema_name=schema_name_for(tenant_id),
        status=restored_status(source.status, contents.previous_status),
        plan=source.plan,
        trial_ends_at=source.trial_ends_at,
        created_at=created_at,
    )
    with uow_factory() as uow:
        existing = uow.tenants.get(target.id)
        if existing is not None and existing.status is not TenantStatus.DELETED:
            raise Conflict("tenant_exists", f"tenant {target.id} exists; restore with --slug NEW")
        holder = uow.tenants.get_by_slug(slug)
        if holder is not None and holder.id != target.id:
            raise Conflict("slug_taken", f"slug {slug!r} is taken")
        if existing is None:
            uow.tenants.add(target)
        else:
            uow.restore.revive(target)
        uow.tenants.set_mfa_required(target.id, contents.mfa_required_for_workers)
        uow.restore.load_schema(archive, target.schema_name)
        version = uow.schemas.migrate(target.schema_name).version
        uow.tenants.record_migration(target.id, version, None)
        user_ids, created = {}, 0
        for user in contents.users:
            user_ids[user.id] = uow.users.id_by_email(user.email)
            if user_ids[user.id] is None:
                user_ids[user.id] = uow.restore.add_user(user)
                created += 1
        for membership in contents.memberships:
            uow.memberships.add(
                user_id=user_ids[membership.user_id],
                tenant_id=target.id,
                role=membership.role,
                client_id=membership.client_id,
            )
        metadata = {"slug": slug, "schema_version": version, "reason": "new" if new_slug else "same"}
        record_tenant_event(uow, "export.restored", target.id, actor, metadata=metadata)
        try:
            media_files = archive.install_media(target.id)
            uow.commit()
        except BaseException:
            archive.remove_media(target.id)
            raise
    return RestoreResult(
        tenant=replace(target, schema_version=version),
        media_files=media_files,
        users_created=created,
        users_matched=len(contents.users) - created,
    )
