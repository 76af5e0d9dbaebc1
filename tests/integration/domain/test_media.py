"""Media: upload limits and content sniffing, storage layout, download headers, soft delete,
purge, and the client's own view."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from backend.core.db import tenant_scope
from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.media import media
from backend.infrastructure.sql.unit_of_work import SqlTenantUnitOfWork
from backend.infrastructure.storage import LocalMediaStorage
from backend.service.media import purge_deleted_media
from tests.integration.domain.conftest import API, JPEG, PDF, WEBP, png_bytes, upload
from tests.owner import owner_engine

FIELDS = {
    "id",
    "client_id",
    "appointment_id",
    "filename",
    "content_type",
    "size_bytes",
    "sha256",
    "uploaded_by",
    "created_at",
}


def stored_files(runtime) -> set[str]:
    root = runtime.settings.media_dir
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.mark.parametrize(
    ("data", "filename", "content_type"),
    [
        (png_bytes(), "photo.png", "image/png"),
        (JPEG, "IMG_0001.JPG", "image/jpeg"),
        (PDF, "report.pdf", "application/pdf"),
        (WEBP, "pic.webp", "image/webp"),
        (PDF, "looks-like.png", "application/pdf"),  # the bytes decide, not the name
    ],
)
def test_upload_records_sniffed_type_size_and_hash(workspace, runtime, data, filename, content_type):
    ws = workspace()
    person = ws.create_client(name="A")
    item = ws.upload(data=data, filename=filename, client_id=person["id"])
    assert set(item) == FIELDS
    assert item["content_type"] == content_type
    assert item["size_bytes"] == len(data)
    assert item["sha256"] == hashlib.sha256(data).hexdigest()
    assert (item["client_id"], item["appointment_id"], item["uploaded_by"]) == (person["id"], None, "worker")
    path = runtime.settings.media_dir / str(ws.tenant.id) / item["id"]
    assert path.read_bytes() == data
    assert ws.http.get(f"{API}/media/{item['id']}", headers=ws.worker).json == item


def test_upload_linked_to_an_appointment_of_that_client(workspace):
    ws = workspace()
    a, b = ws.create_client(name="A"), ws.create_client(name="B")
    a_visit = ws.book(a["id"], 0, 1)
    item = ws.upload(client_id=a["id"], appointment_id=a_visit["id"])
    assert item["appointment_id"] == a_visit["id"]
    wrong = upload(ws.http, ws.worker, client_id=b["id"], appointment_id=a_visit["id"])
    assert wrong.status_code == 404
    assert wrong.json["detail"] == "not_found"
    unknown = upload(ws.http, ws.worker, client_id=a["id"], appointment_id=uuid.uuid4())
    assert unknown.status_code == 404
    # Deleting the appointment keeps the file with the client.
    assert ws.http.delete(f"{API}/appointments/{a_visit['id']}", headers=ws.worker).status_code == 204
    kept = ws.http.get(f"{API}/media/{item['id']}", headers=ws.worker).json
    assert (kept["client_id"], kept["appointment_id"]) == (a["id"], None)


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (b"<html><script>alert(1)</script></html>", "photo.png"),
        (b"MZ\x90\x00" + b"\x00" * 100, "invoice.pdf"),
        (b"PK\x03\x04" + b"\x00" * 100, "archive.jpg"),
        (b"", "empty.png"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "image.svg"),
    ],
)
def test_bytes_of_a_type_not_allowed_are_refused(workspace, runtime, data, filename):
    ws = workspace()
    person = ws.create_client(name="A")
    before = stored_files(runtime)
    response = upload(ws.http, ws.worker, data=data, filename=filename, client_id=person["id"])
    assert response.status_code == 415
    assert response.json["detail"] == "unsupported_media_type"
    assert stored_files(runtime) == before


def test_declared_content_type_is_ignored(workspace):
    ws = workspace()
    person = ws.create_client(name="A")
    import io

    body = {"client_id": person["id"], "file": (io.BytesIO(b"plain text"), "a.png", "image/png")}
    response = ws.http.post(f"{API}/media", data=body, headers=ws.worker, content_type="multipart/form-data")
    assert response.status_code == 415


def test_a_file_above_the_media_limit_is_refused_and_leaves_nothing(workspace, runtime, monkeypatch):
    ws = workspace()
    person = ws.create_client(name="A")
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update=dict(media_max_bytes=4096)))
    before = stored_files(runtime)
    exactly = png_bytes() + b"\x00" * (4096 - len(png_bytes()))
    assert upload(ws.http, ws.worker, data=exactly, client_id=person["id"]).status_code == 201
    response = upload(ws.http, ws.worker, data=exactly + b"\x00", client_id=person["id"])
    assert response.status_code == 413
    assert response.json["detail"] == "payload_too_large"
    after = stored_files(runtime)
    assert len(after - before) == 1  # only the first upload; no partial file
    listed = ws.http.get(f"{API}/media", headers=ws.worker)
    assert json.loads(listed.headers["X-Pagination"])["total"] == 1


def test_a_request_above_the_body_limit_is_refused(workspace, app, monkeypatch):
    ws = workspace()
    person = ws.create_client(name="A")
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 2048)
    response = upload(ws.http, ws.worker, data=png_bytes() + b"\x00" * 4096, client_id=person["id"])
    assert response.status_code == 413
    assert response.json["detail"] == "payload_too_large"


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"client_id": None}, "client_id"),  # a worker must say whose file it is
        ({"client_id": "nope"}, "client_id"),
        ({"extra": "1"}, "extra"),  # unknown part
        ({"sha256": "0" * 64}, "sha256"),  # read-only
    ],
)
def test_upload_refuses_invalid_form(workspace, form, field):
    ws = workspace()
    person = ws.create_client(name="A")
    response = upload(ws.http, ws.worker, **{"client_id": person["id"], **form})
    assert response.status_code == 422
    assert field in response.json["errors"]


def test_upload_without_a_file_part_is_refused(workspace):
    ws = workspace()
    person = ws.create_client(name="A")
    missing = ws.http.post(
        f"{API}/media",
        data={"client_id": person["id"]},
        headers=ws.worker,
        content_type="multipart/form-data",
    )
    assert missing.status_code == 422 and "file" in missing.json["errors"]
    as_text = ws.http.post(
        f"{API}/media",
        data={"client_id": person["id"], "file": "not a file"},
        headers=ws.worker,
        content_type="multipart/form-data",
    )
    assert as_text.status_code == 422 and "file" in as_text.json["errors"]


def test_upload_for_an_unknown_or_foreign_client_is_not_found(workspace):
    ws, other = workspace(), workspace()
    foreign = other.create_client(name="Elsewhere")
    for client_id in (foreign["id"], uuid.uuid4()):
        response = upload(ws.http, ws.worker, client_id=client_id)
        assert response.status_code == 404


@pytest.mark.parametrize(
    "filename",
    ["../../etc/passwd.png", "..\\..\\boot.ini", "/abs/path.png", "a\tb\x1b[31m|c.png", "...", "x" * 300],
)
def test_storage_paths_never_contain_user_input(workspace, runtime, filename):
    ws = workspace()
    person = ws.create_client(name="A")
    item = ws.upload(filename=filename, client_id=person["id"])
    new = {path for path in stored_files(runtime) if path.startswith(str(ws.tenant.id))}
    assert new == {f"{ws.tenant.id}/{item['id']}"}
    for part in next(iter(new)).split("/"):
        uuid.UUID(part)  # every path component is an id the application generated
    assert "/" not in item["filename"] and "\\" not in item["filename"] and "\n" not in item["filename"]
    assert 0 < len(item["filename"]) <= 120
    download = ws.http.get(f"{API}/media/{item['id']}/content", headers=ws.worker)
    assert "\t" not in download.headers["Content-Disposition"]


def test_download_streams_the_bytes_with_safe_headers(workspace):
    ws = workspace()
    person = ws.create_client(name="A")
    data = png_bytes(3, 2)
    item = ws.upload(data=data, filename="Ré:sumé; scan.jpeg", client_id=person["id"])
    response = ws.http.get(f"{API}/media/{item['id']}/content", headers=ws.worker)
    assert response.status_code == 200
    assert response.get_data() == data
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''R%C3%A9_sum%C3%A9_%20scan.png" in disposition  # the bytes are a PNG
    assert 'filename="Re_sume_ scan.png"' in disposition  # an ASCII fallback for old clients
    assert "private" in response.headers["Cache-Control"]
    assert response.headers["ETag"] == f'"{item["sha256"]}"'
    again = ws.http.get(
        f"{API}/media/{item['id']}/content", headers={**ws.worker, "If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304


def test_delete_is_soft_then_purge_removes_row_and_file(workspace, runtime):
    ws = workspace()
    person = ws.create_client(name="A")
    old, recent, live = (ws.upload(client_id=person["id"]) for _ in range(3))
    for item in (old, recent):
        assert ws.http.delete(f"{API}/media/{item['id']}", headers=ws.worker).status_code == 204
    for suffix in ("", "/content"):
        assert ws.http.get(f"{API}/media/{old['id']}{suffix}", headers=ws.worker).status_code == 404
    assert ws.http.delete(f"{API}/media/{old['id']}", headers=ws.worker).status_code == 404
    listed = ws.http.get(f"{API}/media", headers=ws.worker).json
    assert [item["id"] for item in listed] == [live["id"]]
    directory = runtime.settings.media_dir / str(ws.tenant.id)
    assert (directory / old["id"]).exists()  # kept until the retention period ends
    now = datetime.now(UTC)
    with tenant_scope(owner_engine(), ws.tenant.schema_name) as connection:
        connection.execute(
            update(media)
            .where(media.c.id == uuid.UUID(old["id"]))
            .values(deleted_at=now - timedelta(days=40))
        )
    purged = purge_deleted_media(
        tenant_id=ws.tenant.id,
        older_than=now - timedelta(days=30),
        uow_factory=lambda: SqlTenantUnitOfWork(owner_engine(), ws.tenant.schema_name),
        storage=LocalMediaStorage(runtime.settings.media_dir),
        batch_size=1,
    )
    assert purged == 1
    assert not (directory / old["id"]).exists()
    assert (directory / recent["id"]).exists() and (directory / live["id"]).exists()
    with tenant_scope(owner_engine(), ws.tenant.schema_name) as connection:
        remaining = set(connection.execute(select(media.c.id)).scalars())
    assert remaining == {uuid.UUID(recent["id"]), uuid.UUID(live["id"])}


def test_deletion_is_audited_without_file_details(workspace, runtime):
    ws = workspace()
    item = ws.upload(filename="secret-diagnosis.png", client_id=ws.create_client(name="A")["id"])
    ws.http.delete(f"{API}/media/{item['id']}", headers=ws.worker)
    with owner_engine().connect() as connection:
        event = connection.execute(select(audit_events).where(audit_events.c.target_id == item["id"])).one()
    assert (event.event, event.tenant_id, event.actor_role) == ("media.deleted", ws.tenant.id, "worker")
    assert "secret" not in json.dumps(event.metadata)


def test_list_filters_and_pages_newest_first(workspace):
    ws = workspace()
    a, b = ws.create_client(name="A"), ws.create_client(name="B")
    visit = ws.book(a["id"], 0, 1)
    a1 = ws.upload(client_id=a["id"])
    b1 = ws.upload(client_id=b["id"])
    a2 = ws.upload(client_id=a["id"], appointment_id=visit["id"])

    def ids(**query) -> list[str]:
        response = ws.http.get(f"{API}/media", query_string=query, headers=ws.worker)
        assert response.status_code == 200
        return [item["id"] for item in response.json]

    assert ids() == [a2["id"], b1["id"], a1["id"]]
    assert ids(client_id=a["id"]) == [a2["id"], a1["id"]]
    assert ids(appointment_id=visit["id"]) == [a2["id"]]
    assert ids(page=2, page_size=2) == [a1["id"]]
    assert ws.http.get(f"{API}/media?page_size=101", headers=ws.worker).status_code == 422


def test_a_client_sees_uploads_and_deletes_only_their_own(workspace, client_token, runtime):
    ws = workspace()
    me, my_headers = client_token(ws.tenant)
    other = ws.create_client(name="Other")
    from_worker = ws.upload(client_id=me)
    theirs = ws.upload(client_id=other["id"])
    # client_id is required of clients too (the document says so): their own, from GET /me.
    assert ws.http.get(f"{API}/me", headers=my_headers).json["client_id"] == str(me)
    omitted = upload(ws.http, my_headers)
    assert omitted.status_code == 422 and "client_id" in omitted.json["errors"]
    mine = ws.upload(headers=my_headers, client_id=me)
    assert (mine["client_id"], mine["uploaded_by"]) == (str(me), "client")
    also_mine = ws.upload(headers=my_headers, client_id=me)
    listed = ws.http.get(f"{API}/media", headers=my_headers).json
    assert {item["id"] for item in listed} == {from_worker["id"], mine["id"], also_mine["id"]}
    assert ws.http.get(f"{API}/media", query_string={"client_id": other["id"]}, headers=my_headers).json == []
    assert ws.http.get(f"{API}/media/{from_worker['id']}/content", headers=my_headers).status_code == 200
    for suffix in ("", "/content"):
        assert ws.http.get(f"{API}/media/{theirs['id']}{suffix}", headers=my_headers).status_code == 404
    assert upload(ws.http, my_headers, client_id=other["id"]).status_code == 404
    assert ws.http.delete(f"{API}/media/{theirs['id']}", headers=my_headers).status_code == 404
    refused = ws.http.delete(f"{API}/media/{from_worker['id']}", headers=my_headers)
    assert refused.status_code == 403 and refused.json["detail"] == "forbidden"
    assert ws.http.delete(f"{API}/media/{mine['id']}", headers=my_headers).status_code == 204
    assert ws.http.get(f"{API}/media/{from_worker['id']}", headers=ws.worker).status_code == 200
    assert ws.http.get(f"{API}/media/{theirs['id']}", headers=ws.worker).status_code == 200
