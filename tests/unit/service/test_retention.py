"""The media purge of the retention task on in-memory units of work and storage
(tests/unit/fakes.py): only media soft-deleted before the cut-off go, file and row, and a dry
run changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from backend.service import retention
from tests.unit.fakes import FakeMediaStorage, FakeTenantUnitOfWork, stored_media

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TENANT = uuid.uuid4()


def stored(uow, storage, deleted_at):
    return stored_media(uow, storage, TENANT, created_at=NOW - timedelta(days=90), deleted_at=deleted_at)


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
