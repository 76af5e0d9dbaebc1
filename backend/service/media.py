"""Media use cases: upload (type sniffed from the bytes, size capped), list, download,
soft delete, and the purge of soft-deleted media past the retention period."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import BinaryIO

import filetype

from backend.domain.errors import Forbidden, Invalid, NotFound, TooLarge, UnsupportedType
from backend.domain.identity import Principal, Role
from backend.domain.media import Media, MediaFilter, clean_filename
from backend.service.appointments import own_client_id
from backend.service.ports import MediaStorage, TenantUnitOfWork

SNIFF_BYTES = 8192  # filetype looks at most at the first 8 KiB
CHUNK_BYTES = 64 * 1024
PURGE_BATCH = 500


class _Meter:
    """Counts and hashes the bytes flowing to storage; stops the flow past the limit."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.digest = hashlib.sha256()

    def chunks(self, head: bytes, content: BinaryIO) -> Iterator[bytes]:
        chunk = head
        while chunk:
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise TooLarge("payload_too_large", f"files are limited to {self.max_bytes} bytes")
            self.digest.update(chunk)
            yield chunk
            chunk = content.read(CHUNK_BYTES)


def sniff_content_type(head: bytes, allowed_types: tuple[str, ...]) -> str:
    """The type the bytes really are, if allowed; the name and the declared type are ignored."""
    guessed = filetype.guess_mime(head) if head else None
    if guessed not in allowed_types:
        raise UnsupportedType("unsupported_media_type", f"allowed types: {', '.join(allowed_types)}")
    return guessed


def upload_media(
    *,
    viewer: Principal,
    client_id: uuid.UUID | None,
    appointment_id: uuid.UUID | None,
    filename: str | None,
    content: BinaryIO,
    max_bytes: int,
    allowed_types: tuple[str, ...],
    now: datetime,
    uow: TenantUnitOfWork,
    storage: MediaStorage,
) -> Media:
    """Stores a file linked to a client (a client: themselves) and optionally to one of that
    client's appointments; the row and the file exist together or not at all."""
    own = own_client_id(viewer)
    if own is not None and client_id not in (None, own):
        raise NotFound("not_found", "client not found")
    client_id = own or client_id
    if client_id is None:
        raise Invalid({"client_id": ["Missing data for required field."]})
    head = content.read(SNIFF_BYTES)
    content_type = sniff_content_type(head, allowed_types)
    media_id = uuid.uuid4()
    meter = _Meter(max_bytes)
    with uow:
        if not uow.clients.exists(client_id):
            raise NotFound("not_found", "client not found")
        if appointment_id is not None:
            appointment = uow.appointments.get(appointment_id, client_id=client_id)
            if appointment is None:
                raise NotFound("not_found", "appointment not found")
        storage.save(viewer.tenant_id, media_id, meter.chunks(head, content))
        try:
            created = uow.media.add(
                Media(
                    id=media_id,
                    client_id=client_id,
                    appointment_id=appointment_id,
                    filename=clean_filename(filename),
                    content_type=content_type,
                    size_bytes=meter.size,
                    sha256=meter.digest.hexdigest(),
                    uploaded_by=viewer.user_id,
                    uploaded_by_role=viewer.role.value,
                    created_at=now,
                )
            )
            uow.commit()
        except BaseException:
            storage.delete(viewer.tenant_id, media_id)
            raise
    return created


def list_media(
    *, viewer: Principal, filters: MediaFilter, page: int, page_size: int, uow: TenantUnitOfWork
) -> tuple[list[Media], int]:
    """Lists one page of live media, newest first; a client gets only their own."""
    own = own_client_id(viewer)
    if own is not None:
        if filters.client_id not in (None, own):
            return [], 0
        filters = MediaFilter(client_id=own, appointment_id=filters.appointment_id)
    with uow:
        return uow.media.list_page(filters=filters, offset=(page - 1) * page_size, limit=page_size)


def get_media(*, viewer: Principal, media_id: uuid.UUID, uow: TenantUnitOfWork) -> Media:
    """Returns one live media item the viewer may see."""
    with uow:
        item = uow.media.get(media_id, client_id=own_client_id(viewer))
    if item is None:
        raise NotFound()
    return item


def open_media(
    *, viewer: Principal, media_id: uuid.UUID, uow: TenantUnitOfWork, storage: MediaStorage
) -> tuple[Media, BinaryIO]:
    """Returns a live media item the viewer may see with its bytes, opened for streaming."""
    item = get_media(viewer=viewer, media_id=media_id, uow=uow)
    try:
        return item, storage.open(viewer.tenant_id, item.id)
    except FileNotFoundError:
        raise NotFound() from None


def delete_media(
    *,
    viewer: Principal,
    media_id: uuid.UUID,
    now: datetime,
    uow: TenantUnitOfWork,
    request_id: str | None = None,
) -> None:
    """Soft-deletes a media item (a client: only one they uploaded themselves); the purge
    removes row and file after the retention period."""
    with uow:
        item = uow.media.get(media_id, client_id=own_client_id(viewer))
        if item is None:
            raise NotFound()
        if viewer.role is Role.CLIENT and item.uploaded_by != viewer.user_id:
            raise Forbidden("forbidden", "only the worker can delete this file")
        uow.media.soft_delete(media_id, now)
        uow.media_trash.trashed(now)  # the retention run finds this tenant (due work)
        uow.audit.record(
            "media.deleted",
            tenant_id=viewer.tenant_id,
            actor_user_id=viewer.user_id,
            actor_role=viewer.role.value,
            target_type="media",
            target_id=str(media_id),
            request_id=request_id,
            metadata={"bytes": item.size_bytes},
        )
        uow.commit()


def purge_deleted_media(
    *,
    tenant_id: uuid.UUID,
    older_than: datetime,
    uow_factory: Callable[[], TenantUnitOfWork],
    storage: MediaStorage,
    batch_size: int = PURGE_BATCH,
) -> int:
    """Removes, file first then row, every media item soft-deleted before `older_than`, in
    batches (one transaction each); returns how many. Re-running after a crash finishes the job:
    a row stays until its file is gone."""
    purged = 0
    while True:
        with uow_factory() as uow:
            batch = uow.media.deleted_before(older_than, batch_size)
            for item in batch:
                storage.delete(tenant_id, item.id)
            purged += uow.media.hard_delete([item.id for item in batch])
            uow.commit()
        if len(batch) < batch_size:
            return purged
