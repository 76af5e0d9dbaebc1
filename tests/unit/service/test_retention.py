"""The media purge of the retention task on in-memory units of work and storage
(tests/unit/fakes.py): only media soft-deleted before the cut-off go, file and row, and a dry
run changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from backend.domain.media import Media
from backend.service import retention
from tests.unit.fakes import FakeMediaStorage, FakeTenantUnitOfWork

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TENANT = uuid.uuid4()


def stored(uow, storage, deleted_at):
    item = Media(
        id=uuid.uuid4(),
        client_id=uuid.uuid4(),
        appointment_id=None,
        filename="f.png",
        content_type="image/png",
        size_bytes=3,
        sha256="x",
        uploaded_by=uuid.uuid4(),
        uploaded_by_role="worker",
        created_at=NOW - timedelta(days=90),
        deleted_at=deleted_at,
    )
    uow.media.rows[item.id] = item
    storage.save(TENANT, item.id, [b"abc"])
    return item


def purge(uow, storage, dry_run):
    return retention.purge_media(
        tenant_id=TENANT,
        cutoff=NOW - timedelta(days=30),
        dry_run=dry_run,
        uow_factory=lambda: uow,
        storage=storage,
        batch_size=1,
    )


def test_only_media_deleted_before_the_cutoff_are_purged_file_and_row():
    uow, storage = FakeTenantUnitOfWork(), FakeMediaStorage()
    old = stored(uow, storage, NOW - timedelta(days=31))
    older = stored(uow, storage, NOW - timedelta(days=60))
    recent = stored(uow, storage, NOW - timedelta(days=1))
    live = stored(uow, storage, None)
    assert purge(uow, storage, dry_run=True) == 2
    assert len(uow.media.rows) == 4 and len(storage.files_by_tenant[TENANT]) == 4
    assert purge(uow, storage, dry_run=False) == 2
    assert set(uow.media.rows) == {recent.id, live.id}
    assert set(storage.files_by_tenant[TENANT]) == {str(recent.id), str(live.id)}
    assert old.id not in uow.media.rows and older.id not in uow.media.rows
