"""Media and audit rules on in-memory units of work and storage (tests/unit/fakes.py): a file
and its row exist together or not at all, types are sniffed from the bytes, a client deletes
only what they uploaded, refused access is recorded. Isolation and SQL: tests/integration."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime

import pytest

from backend.domain.errors import Forbidden, NotFound
from backend.domain.identity import Principal, Role
from backend.service import audit, clients, media
from backend.service.media import TooLarge, UnsupportedType
from tests.unit.fakes import FakeMediaStorage, FakeRegistryUnitOfWork, FakeTenantUnitOfWork

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
