"""Media and audit rules on in-memory units of work and storage (tests/unit/fakes.py): a file
and its row exist together or not at all, types are sniffed from the bytes, a client deletes
only what they uploaded, refused access is recorded. Isolation and SQL: tests/integration."""

from __future__ import annotations

import io
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from backend.domain.errors import Forbidden, Invalid, NotFound
from backend.domain.identity import Principal, Role
from backend.domain.media import Media, MediaFilter
from backend.service import appointments, audit, clients, media
from backend.service.media import TooLarge, UnsupportedType
from tests.unit.fakes import (
    FakeMediaRepository,
    FakeMediaStorage,
    FakeRegistryUnitOfWork,
    FakeTenantUnitOfWork,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TENANT = uuid.uuid4()
WORKER = Principal(user_id=uuid.uuid4(), tenant_id=TENANT, role=Role.WORKER)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
ALLOWED = ("image/png", "application/pdf")


@pytest.fixture()
def uow():
    return FakeTenantUnitOfWork()


def upload(uow, storage, viewer, client_id, data=PNG, max_bytes=1024):
    return media.upload_media(
        viewer=viewer,
        client_id=client_id,
        appointment_id=None,
        filename="../scan.png",
        content=io.BytesIO(data),
        max_bytes=max_bytes,
        allowed_types=ALLOWED,
        now=NOW,
        uow=uow,
        storage=storage,
    )


def test_an_upload_stores_the_file_and_its_row_with_size_hash_and_sniffed_type(uow):
    storage = FakeMediaStorage()
    client = clients.create_client(fields={"name": "Ada"}, now=NOW, uow=uow)
    item = upload(uow, storage, WORKER, client.id)
    assert uow.media.get(item.id) == item
    assert item.content_type == "image/png" and item.size_bytes == len(PNG) and item.filename == "scan.png"
    assert storage.files_by_tenant[TENANT][str(item.id)] == PNG


def test_a_file_over_the_limit_leaves_neither_file_nor_row(uow):
    storage = FakeMediaStorage()
    client = clients.create_client(fields={"name": "Ada"}, now=NOW, uow=uow)
    with pytest.raises(TooLarge):
        upload(uow, storage, WORKER, client.id, data=PNG * 40, max_bytes=len(PNG))
    assert uow.media.rows == {} and not storage.files_by_tenant.get(TENANT)


def test_a_type_not_allowed_is_refused_whatever_the_name(uow):
    client = clients.create_client(fields={"name": "Ada"}, now=NOW, uow=uow)
    with pytest.raises(UnsupportedType):
        upload(uow, FakeMediaStorage(), WORKER, client.id, data=b"MZ\x90\x00 not an image")
    assert uow.media.rows == {}


def test_a_client_uploads_only_for_themselves_and_deletes_only_their_own_files(uow):
    storage = FakeMediaStorage()
    mine = clients.create_client(fields={"name": "Ada"}, now=NOW, uow=uow)
    other = clients.create_client(fields={"name": "Bob"}, now=NOW, uow=uow)
    ada = Principal(user_id=uuid.uuid4(), tenant_id=TENANT, role=Role.CLIENT, client_id=mine.id)
    with pytest.raises(NotFound):
        upload(uow, storage, ada, other.id)
    by_worker = upload(uow, storage, WORKER, mine.id)
    by_ada = upload(uow, storage, ada, None)
    assert by_ada.client_id == mine.id
    with pytest.raises(Forbidden):
        media.delete_media(viewer=ada, media_id=by_worker.id, now=NOW, uow=uow)
    media.delete_media(viewer=ada, media_id=by_ada.id, now=NOW, uow=uow, request_id="r")
    assert uow.media.get(by_ada.id) is None and uow.media.get(by_worker.id) is not None
    assert uow.audit.names() == ["media.deleted"]


def test_refused_access_is_recorded_and_committed_with_the_route_only():
    uow = FakeRegistryUnitOfWork()
    audit.record_access_denied(
        tenant_id=TENANT,
        user_id=WORKER.user_id,
        role="client",
        code="read_only",
        route="/api/v1/clients/<uuid:client_id>",
        method="PATCH",
        request_id="r1",
        uow=uow,
    )
    [(event, fields)] = uow.audit.events
    assert event == "access.denied" and uow.commits == 1
    assert fields["outcome"] == "denied"
    assert fields["metadata"] == {
        "code": "read_only",
        "route": "/api/v1/clients/<uuid:client_id>",
        "method": "PATCH",
    }


def test_the_trail_is_paged_newest_first_for_the_asking_tenant_only():
    uow = FakeRegistryUnitOfWork()
    for n in range(3):
        uow.audit.record(f"e{n}", tenant_id=TENANT)
    uow.audit.record("elsewhere", tenant_id=uuid.uuid4())
    page, total = audit.list_events(tenant_id=TENANT, page=1, page_size=2, uow=uow)
    assert total == 3 and [event for event, _ in page] == ["e2", "e1"]


def stored_item(uow, client_id, minutes=0, appointment_id=None):
    item = Media(
        uuid.uuid4(),
        client_id,
        appointment_id,
        "f.png",
        "image/png",
        3,
        "x",
        WORKER.user_id,
        "worker",
        NOW + timedelta(minutes=minutes),
    )
    uow.media.rows[item.id] = item
    return item


def test_media_are_listed_newest_first_and_a_client_gets_only_their_own(uow):
    ada, bob = (clients.create_client(fields={"name": n}, now=NOW, uow=uow) for n in ("Ada", "Bob"))
    older, newer, bobs = stored_item(uow, ada.id, 0), stored_item(uow, ada.id, 5), stored_item(uow, bob.id, 9)
    items, total = media.list_media(viewer=WORKER, filters=MediaFilter(), page=1, page_size=10, uow=uow)
    assert [m.id for m in items] == [bobs.id, newer.id, older.id] and total == 3
    as_ada = Principal(user_id=uuid.uuid4(), tenant_id=TENANT, role=Role.CLIENT, client_id=ada.id)
    items, total = media.list_media(viewer=as_ada, filters=MediaFilter(), page=1, page_size=1, uow=uow)
    assert [m.id for m in items] == [newer.id] and total == 2
    others = media.list_media(
        viewer=as_ada, filters=MediaFilter(client_id=bob.id), page=1, page_size=9, uow=uow
    )
    assert others == ([], 0)
    with pytest.raises(NotFound):
        media.get_media(viewer=as_ada, media_id=bobs.id, uow=uow)
    assert media.get_media(viewer=as_ada, media_id=older.id, uow=uow) == older


def test_opening_a_media_item_whose_file_is_gone_is_not_found(uow):
    storage = FakeMediaStorage()
    client = clients.create_client(fields={"name": "Ada"}, now=NOW, uow=uow)
    item = upload(uow, storage, WORKER, client.id)
    found, handle = media.open_media(viewer=WORKER, media_id=item.id, uow=uow, storage=storage)
    assert found == item and handle.read() == PNG
    storage.delete(TENANT, item.id)
    with pytest.raises(NotFound):
        media.open_media(viewer=WORKER, media_id=item.id, uow=uow, storage=storage)


def test_an_upload_needs_a_known_client_and_an_appointment_of_that_client(uow):
    storage = FakeMediaStorage()
    ada, bob = (clients.create_client(fields={"name": n}, now=NOW, uow=uow) for n in ("Ada", "Bob"))
    starts = NOW + timedelta(days=1)
    bobs = appointments.create_appointment(
        viewer=WORKER,
        fields={"client_id": bob.id, "starts_at": starts, "ends_at": starts + timedelta(hours=1)},
        now=NOW,
        uow=uow,
    )
    with pytest.raises(Invalid) as no_client:
        upload(uow, storage, WORKER, None)
    assert "client_id" in no_client.value.errors
    with pytest.raises(NotFound):
        upload(uow, storage, WORKER, uuid.uuid4())
    with pytest.raises(NotFound):
        media.upload_media(
            viewer=WORKER,
            client_id=ada.id,
            appointment_id=bobs.id,
            filename="x.png",
            content=io.BytesIO(PNG),
            max_bytes=1024,
            allowed_types=ALLOWED,
            now=NOW,
            uow=uow,
            storage=storage,
        )
    assert uow.media.rows == {} and not storage.files_by_tenant.get(TENANT)


class FailingMediaRepository(FakeMediaRepository):
    def add(self, item):
        raise RuntimeError("connection lost")


def test_a_row_that_cannot_be_written_takes_its_file_with_it(uow):
    storage = FakeMediaStorage()
    client = clients.create_client(fields={"name": "Ada"}, now=NOW, uow=uow)
    uow.media = FailingMediaRepository()
    with pytest.raises(RuntimeError):
        upload(uow, storage, WORKER, client.id)
    assert not storage.files_by_tenant.get(TENANT)


def test_a_deleted_item_is_gone_for_everyone_and_deleting_it_again_is_not_found(uow):
    client = clients.create_client(fields={"name": "Ada"}, now=NOW, uow=uow)
    item = upload(uow, FakeMediaStorage(), WORKER, client.id)
    media.delete_media(viewer=WORKER, media_id=item.id, now=NOW, uow=uow)
    [(_, fields)] = uow.audit.events
    assert fields["metadata"] == {"bytes": len(PNG)} and fields["target_id"] == str(item.id)
    assert uow.media.rows[item.id].deleted_at == NOW, "soft: the purge removes it later"
    with pytest.raises(NotFound):
        media.delete_media(viewer=WORKER, media_id=item.id, now=NOW, uow=uow)
    assert media.list_media(viewer=WORKER, filters=MediaFilter(), page=1, page_size=9, uow=uow) == ([], 0)


class CrashingStorage(FakeMediaStorage):
    """Removes files, then the process dies before the second one."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_after = 1

    def delete(self, tenant_id, media_id) -> None:
        if self.crash_after == 0:
            raise KeyboardInterrupt
        self.crash_after -= 1
        super().delete(tenant_id, media_id)


def test_the_purge_goes_in_batches_file_first_and_a_rerun_after_a_crash_finishes_it(uow):
    storage = CrashingStorage()
    old = [stored_item(uow, uuid.uuid4(), minutes=-i) for i in range(3)]
    for item in old:
        uow.media.rows[item.id] = replace(item, deleted_at=NOW - timedelta(days=40))
        storage.save(TENANT, item.id, [b"abc"])
    kept = stored_item(uow, uuid.uuid4())
    uow.media.rows[kept.id] = replace(kept, deleted_at=NOW - timedelta(days=1))

    def purge():
        return media.purge_deleted_media(
            tenant_id=TENANT,
            older_than=NOW - timedelta(days=30),
            uow_factory=lambda: uow,
            storage=storage,
            batch_size=2,
        )

    with pytest.raises(KeyboardInterrupt):
        purge()
    assert len(uow.media.rows) == 4, "the batch's rows stay until every file of it is gone"
    storage.crash_after = 99
    assert purge() == 3
    assert set(uow.media.rows) == {kept.id} and set(storage.files_by_tenant[TENANT]) == set()
