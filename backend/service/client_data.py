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

import json
import logging
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from backend.domain import audit as events
from backend.domain.errors import NotFound
from backend.domain.identity import Principal, Role
from backend.domain.lifecycle import ArchiveMember
from backend.domain.tenants import TenantStatus
from backend.service.exports import Progress, audited_stream, read_chunks, recorded
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
    def record(outcome: str, metadata: dict) -> None:
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

    written = Progress()
    members = _members(subject, now, open_snapshot, storage, written)
    return audited_stream(archive, members, written, record, event=events.CLIENT_DATA_EXPORTED)


def _members(
    subject: _Subject, now: datetime, open_snapshot: SnapshotOpener, storage: MediaStorage, written: Progress
) -> Generator[ArchiveMember, None, None]:
    readme = README.format(workspace=subject.workspace["name"] or subject.workspace["slug"]).encode()
    yield ArchiveMember("README.txt", recorded("README.txt", iter([readme]), written))
    with open_snapshot(subject.schema_name, subject.client_id) as snapshot:
        record = snapshot.client_record()
        if record is None:  # the worker deleted the record meanwhile: nothing is theirs any more
            raise NotFound()
        profile = {"account": subject.account, "workspace": subject.workspace, "client_record": record}
        body = json.dumps(profile, indent=2, default=str).encode()
        yield ArchiveMember("profile.json", recorded("profile.json", iter([body]), written))
        yield ArchiveMember(
            "appointments.csv", recorded("appointments.csv", snapshot.appointments_csv(), written)
        )
        yield ArchiveMember("media.csv", recorded("media.csv", snapshot.media_csv(), written))
        files = snapshot.media_files()
    for media_id, filename in files:
        try:
            handle = storage.open(subject.tenant_id, media_id)
        except FileNotFoundError:  # purged since the snapshot: not part of the download
            continue
        name = f"media/{media_id}/{_file_name(filename)}"
        with handle:
            yield ArchiveMember(name, recorded(name, read_chunks(handle), written), compress=False)
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
