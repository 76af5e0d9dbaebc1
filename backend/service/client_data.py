"""A client's own data, as a download (their right of access): a zip streamed like the
worker's export, holding only what the client is shown in the API, about themselves.

Members, in order: `README.txt`, `profile.json` (their login, the workspace, their client
record without the worker's private notes), `appointments.csv` (theirs, with the shared notes,
never the worker's private ones), `media.csv` (the live files linked to them) and the files
under `media/<id>/<name>`, then `manifest.json` (sizes, sha256, row counts). Every row comes
from one read-only snapshot of the tenant schema, filtered by the client id of the caller's
membership: never another client's, never another tenant's (docs/data-lifecycle.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import BinaryIO

from backend.domain import audit as events
from backend.domain.errors import NotFound
from backend.domain.identity import Principal, Role
from backend.domain.lifecycle import ArchiveMember
from backend.domain.tenants import TenantStatus
from backend.service.ports import ArchiveWriter, ClientSnapshot, MediaStorage, RegistryUnitOfWork

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "client-data-export"
MANIFEST_VERSION = 1
READ_CHUNK = 256 * 1024
README = """Your data in {workspace}

This archive holds what {workspace} keeps about you and shows you in the app:
- profile.json: your login (email, name), the workspace, and your client record
- appointments.csv: your appointments, with the notes shared with you
- media.csv and media/: the files linked to you (media/<id>/<file name>)
- manifest.json: every file's size and SHA-256 checksum, and the row counts

The worker's own private notes are their working documents and are not part of it.
Times are ISO 8601 in UTC.
"""


SnapshotOpener = Callable[[str, uuid.UUID], AbstractContextManager[ClientSnapshot]]


@dataclass
class _Written:
    files: list[dict] = field(default_factory=list)
    bytes_out: int = 0


@dataclass(frozen=True)
class _Subject:
    tenant_id: uuid.UUID
    schema_name: str
    workspace: dict
    account: dict
    client_id: uuid.UUID


def export_client_data(
    *,
    viewer: Principal,
    now: datetime,
    uow_factory: Callable[[], RegistryUnitOfWork],
    open_snapshot: SnapshotOpener,
    storage: MediaStorage,
    archive: ArchiveWriter,
    request_id: str | None = None,
) -> Iterator[bytes]:
    """Returns the client's own data as a stream of zip bytes. The caller is looked up now
    (a client without a client record has nothing to take: 404); the download is recorded in
    the workspace's trail when the stream ends, fails or is abandoned."""
    if viewer.role is not Role.CLIENT or viewer.client_id is None:
        raise NotFound()
    with uow_factory() as uow:
        tenant = uow.tenants.get(viewer.tenant_id)
        user = uow.users.get(viewer.user_id)
    if tenant is None or user is None or tenant.status is TenantStatus.DELETED:
        raise NotFound()
    subject = _Subject(
        tenant_id=tenant.id,
        schema_name=tenant.schema_name,
        workspace={"slug": tenant.slug, "name": tenant.name},
        account={
            "id": str(user.id),
            "email": user.email,
            "name": user.name,
            "created_at": user.created_at.isoformat(),
            "email_verified_at": user.verified_at.isoformat() if user.verified_at else None,
        },
        client_id=viewer.client_id,
    )
    return _stream(subject, viewer, now, uow_factory, open_snapshot, storage, archive, request_id)


def _stream(
    subject: _Subject,
    viewer: Principal,
    now: datetime,
    uow_factory: Callable[[], RegistryUnitOfWork],
    open_snapshot: SnapshotOpener,
    storage: MediaStorage,
    archive: ArchiveWriter,
    request_id: str | None,
) -> Iterator[bytes]:
    written = _Written()
    outcome, code = "failure", None
    members = _members(subject, now, open_snapshot, storage, written)
    try:
        for data in archive.stream(members):
            written.bytes_out += len(data)
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
        metadata = {"count": len(written.files), "bytes": written.bytes_out}
        if code:
            metadata["code"] = code
        try:
            with uow_factory() as uow:
                uow.audit.record(
                    events.CLIENT_DATA_EXPORTED,
                    tenant_id=subject.tenant_id,
                    actor_user_id=viewer.user_id,
                    actor_role=Role.CLIENT.value,
                    target_type="client",
                    target_id=str(subject.client_id),
                    request_id=request_id,
                    outcome=outcome,
                    metadata=metadata,
                )
                uow.commit()
        except Exception:  # the response is under way: keep its own error, log this one
            log.exception("could not record client.data_exported")


def _members(
    subject: _Subject, now: datetime, open_snapshot: SnapshotOpener, storage: MediaStorage, written: _Written
) -> Generator[ArchiveMember, None, None]:
    readme = README.format(workspace=subject.workspace["name"] or subject.workspace["slug"]).encode()
    yield ArchiveMember("README.txt", _recorded("README.txt", iter([readme]), written))
    with open_snapshot(subject.schema_name, subject.client_id) as snapshot:
        record = snapshot.client_record()
        if record is None:  # the worker deleted the record meanwhile: nothing is theirs any more
            raise NotFound()
        profile = {"account": subject.account, "workspace": subject.workspace, "client_record": record}
        body = json.dumps(profile, indent=2, default=str).encode()
        yield ArchiveMember("profile.json", _recorded("profile.json", iter([body]), written))
        yield ArchiveMember(
            "appointments.csv", _recorded("appointments.csv", snapshot.appointments_csv(), written)
        )
        yield ArchiveMember("media.csv", _recorded("media.csv", snapshot.media_csv(), written))
        files = snapshot.media_files()
    for media_id, filename in files:
        try:
            handle = storage.open(subject.tenant_id, media_id)
        except FileNotFoundError:  # purged since the snapshot: not part of the download
            continue
        name = f"media/{media_id}/{_file_name(filename)}"
        with handle:
            yield ArchiveMember(name, _recorded(name, _read(handle), written), compress=False)
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "workspace": subject.workspace,
        "client_id": str(subject.client_id),
        "exported_at": now.isoformat(),
        "files": written.files,
    }
    yield ArchiveMember("manifest.json", [json.dumps(manifest, indent=2).encode()])


def _file_name(filename: str) -> str:
    """The display name as one path component (it is cleaned at upload; this is defence)."""
    name = PurePosixPath(filename.replace("\\", "/")).name.lstrip(".")
    return name or "file"


def _read(handle: BinaryIO) -> Generator[bytes, None, None]:
    while chunk := handle.read(READ_CHUNK):
        yield chunk


def _recorded(name: str, source: Iterator[bytes], written: _Written) -> Generator[bytes, None, None]:
    """Passes `source` through and records the member's size, checksum and (for a CSV that
    returns it) row count for the manifest."""
    digest, size, rows = hashlib.sha256(), 0, None
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
    written.files.append(facts)
