"""A client's own data download (GET /me/data) on real PostgreSQL: a zip of their profile,
their appointments with the shared notes and their live media, with a manifest that matches;
never the worker's private notes, never another client's rows or files, never another
tenant's; recorded in the workspace's trail; workers are refused."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from backend.core.db import set_tenant_search_path
from backend.domain.identity import Role
from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.clients import clients
from backend.infrastructure.sql.identity import SqlMembershipRepository, SqlUserRepository
from tests.integration.domain.conftest import PDF, png_bytes
from tests.integration.identity.conftest import add_client_record, bearer
from tests.owner import owner_engine
from tests.sessions import session_token

URL = "/api/v1/me/data"


def book(client, member, client_id, days: int, **fields) -> dict:
    starts = datetime.now(UTC) + timedelta(days=days)
    body = {
        "client_id": str(client_id),
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=1)).isoformat(),
        **fields,
    }
    response = client.post("/api/v1/appointments", json=body, headers=member.worker)
    assert response.status_code == 201, response.json
    return response.json


def upload(client, member, client_id, data: bytes, filename: str) -> dict:
    form = {"file": (io.BytesIO(data), filename), "client_id": str(client_id)}
    response = client.post(
        "/api/v1/media", data=form, headers=member.worker, content_type="multipart/form-data"
    )
    assert response.status_code == 201, response.json
    return response.json


def second_client(runtime, member) -> tuple[uuid.UUID, dict]:
    """Another client of the same workspace with a login: (client id, headers)."""
    client_id = add_client_record(runtime, member.tenant, name="Neighbour NEIGHBOUR-NAME")
    user_id = uuid.uuid4()
    with owner_engine().begin() as connection:
        SqlUserRepository(connection).add(user_id, f"n-{user_id.hex[:10]}@example.com", "Neighbour", None)
        SqlMembershipRepository(connection).add(
            user_id=user_id, tenant_id=member.tenant.id, role=Role.CLIENT, client_id=client_id
        )
    return client_id, bearer(session_token(runtime, user_id=user_id, tenant_id=member.tenant.id))


def set_record_notes(runtime, member, client_id, notes: str) -> None:
    with owner_engine().begin() as connection:
        set_tenant_search_path(connection, member.tenant.schema_name)
        connection.execute(update(clients).where(clients.c.id == client_id).values(notes=notes, phone="+100"))


def rows(archive: zipfile.ZipFile, name: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(archive.read(name).decode())))


def test_a_client_downloads_only_their_own_data(client, member, runtime):
    home, elsewhere = member(), member()
    neighbour_id, neighbour = second_client(runtime, home)
    set_record_notes(runtime, home, home.client_id, "RECORD-PRIVATE-NOTE")
    mine = book(client, home, home.client_id, 3, notes="WORKER-PRIVATE-NOTE", shared_notes="Bring water")
    cancelled = book(client, home, home.client_id, 5, shared_notes="Second visit")
    client.patch(f"/api/v1/appointments/{cancelled['id']}", json={"status": "cancelled"}, headers=home.worker)
    book(client, home, neighbour_id, 7, shared_notes="NEIGHBOUR-SHARED")
    book(client, elsewhere, elsewhere.client_id, 3, shared_notes="OTHER-TENANT-SHARED")
    report = upload(client, home, home.client_id, PDF, "report.pdf")
    gone = upload(client, home, home.client_id, png_bytes(2, 2), "old.png")
    assert client.delete(f"/api/v1/media/{gone['id']}", headers=home.worker).status_code == 204
    theirs = upload(client, home, neighbour_id, png_bytes(3, 3), "neighbour.png")
    upload(client, elsewhere, elsewhere.client_id, png_bytes(4, 4), "other-tenant.png")

    response = client.get(URL, headers=home.client, buffered=True)
    assert response.status_code == 200, response.get_json(silent=True)
    assert response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="')
    assert response.headers["Cache-Control"] == "no-store"
    data = response.get_data()
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    names = archive.namelist()
    assert names == [
        "README.txt",
        "profile.json",
        "appointments.csv",
        "media.csv",
        f"media/{report['id']}/report.pdf",
        "manifest.json",
    ]
    profile = json.loads(archive.read("profile.json"))
    assert profile["client_record"]["id"] == str(home.client_id)
    assert profile["client_record"]["phone"] == "+100"
    assert profile["workspace"]["slug"] == home.tenant.slug
    assert profile["account"]["id"] == str(home.client_user_id)
    appointments = rows(archive, "appointments.csv")
    assert [a["id"] for a in appointments] == [mine["id"], cancelled["id"]]
    assert appointments[0]["shared_notes"] == "Bring water" and "notes" not in appointments[0]
    assert appointments[1]["status"] == "cancelled"
    # The same instant as the API's (PostgreSQL writes no trailing zeros in the fraction).
    assert datetime.fromisoformat(appointments[0]["starts_at"]) == datetime.fromisoformat(mine["starts_at"])
    assert [m["id"] for m in rows(archive, "media.csv")] == [report["id"]]
    assert archive.read(f"media/{report['id']}/report.pdf") == PDF
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == "client-data-export" and manifest["client_id"] == str(home.client_id)
    for facts in manifest["files"]:
        body = archive.read(facts["path"])
        assert (len(body), hashlib.sha256(body).hexdigest()) == (facts["bytes"], facts["sha256"])
    assert {f["path"]: f.get("rows") for f in manifest["files"]}["appointments.csv"] == 2
    # Nothing of the worker's private notes, the neighbour or the other tenant, anywhere.
    everything = b"".join(archive.read(name) for name in names)
    for secret in [
        b"WORKER-PRIVATE-NOTE",
        b"RECORD-PRIVATE-NOTE",
        b"NEIGHBOUR",
        b"OTHER-TENANT",
        theirs["id"].encode(),
    ]:
        assert secret not in everything, secret

    with owner_engine().connect() as connection:
        event = connection.execute(
            select(audit_events).where(
                audit_events.c.tenant_id == home.tenant.id, audit_events.c.event == "client.data_exported"
            )
        ).one()
    assert (event.actor_user_id, event.actor_role, event.outcome) == (
        home.client_user_id,
        "client",
        "success",
    )
    assert (event.target_type, event.target_id) == ("client", str(home.client_id))
    assert event.metadata["count"] == 5 and event.metadata["bytes"] == len(data)

    # The neighbour's own download holds their rows, not the home client's.
    other_archive = zipfile.ZipFile(io.BytesIO(client.get(URL, headers=neighbour, buffered=True).get_data()))
    assert [a["shared_notes"] for a in rows(other_archive, "appointments.csv")] == ["NEIGHBOUR-SHARED"]
    assert [m["id"] for m in rows(other_archive, "media.csv")] == [theirs["id"]]


def test_workers_are_refused_and_a_blocked_workspace_blocks_the_client(client, member):
    m = member()
    refused = client.get(URL, headers=m.worker)
    assert (refused.status_code, refused.json) == (403, {"detail": "forbidden"})
    lapsed = member("trial_expired")
    blocked = client.get(URL, headers=lapsed.client)
    assert (blocked.status_code, blocked.json) == (403, {"detail": "trial_expired"})
    assert client.get(URL).json == {"detail": "missing_token"}


def test_a_client_with_nothing_yet_gets_an_empty_but_complete_archive(client, member):
    m = member()
    archive = zipfile.ZipFile(io.BytesIO(client.get(URL, headers=m.client, buffered=True).get_data()))
    assert archive.namelist() == [
        "README.txt",
        "profile.json",
        "appointments.csv",
        "media.csv",
        "manifest.json",
    ]
    assert rows(archive, "appointments.csv") == [] and rows(archive, "media.csv") == []
    header = archive.read("appointments.csv").decode().splitlines()[0]
    assert header == "id,starts_at,ends_at,status,shared_notes,cancelled_at"


def test_clients_downloading_never_take_the_workers_export_slots(app, client, member, runtime, monkeypatch):
    """Each download holds a pooled connection, so they run a few at a time per process; the
    clients' downloads have slots of their own: a client cannot lock the worker out of the
    workspace's export."""
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"export_max_concurrent": 1}))
    pools = ("saas_export_slots_workspace", "saas_export_slots_client_data")
    saved = {key: app.extensions.pop(key, None) for key in pools}  # new slots, of the size above
    m = member()
    try:
        held = client.get(URL, headers=m.client)  # not read: the stream stays open with its slot
        assert held.status_code == 200
        busy = client.get(URL, headers=m.client, buffered=True)
        assert busy.status_code == 429 and busy.json["detail"] == "rate_limited"
        assert busy.headers["Retry-After"] == "30"
        export = client.get("/api/v1/export", headers=m.worker, buffered=True)
        assert export.status_code == 200
        held.close()  # the slot comes back when the server closes the response
        assert client.get(URL, headers=m.client, buffered=True).status_code == 200
    finally:
        for key, slots in saved.items():
            app.extensions.pop(key, None)
            if slots is not None:
                app.extensions[key] = slots


def exports_recorded(tenant_id) -> int:
    with owner_engine().connect() as connection:
        return len(
            connection.execute(
                select(audit_events.c.id).where(
                    audit_events.c.tenant_id == tenant_id, audit_events.c.event == "client.data_exported"
                )
            ).all()
        )


def test_downloads_are_limited_per_login_whatever_the_address(client, member, runtime, limits):
    """RATE_LIMIT_MY_DATA_USER: past the login's budget the next download is 429 `rate_limited`
    with Retry-After (from any address), builds nothing, and no other login is affected."""
    limits(my_data_user="2 per hour")
    home, elsewhere = member(), member()
    _, neighbour = second_client(runtime, home)
    for address in ("10.7.0.1", "10.7.0.2"):
        response = client.get(URL, headers=home.client, buffered=True, environ_base={"REMOTE_ADDR": address})
        assert response.status_code == 200
    limited = client.get(URL, headers=home.client, buffered=True, environ_base={"REMOTE_ADDR": "10.7.0.3"})
    assert (limited.status_code, limited.json) == (429, {"detail": "rate_limited"})
    assert 0 < int(limited.headers["Retry-After"]) <= 3600
    assert exports_recorded(home.tenant.id) == 2  # the refused one built no archive
    # Another client of the same workspace, from the same address, and another workspace's.
    same_address = {"REMOTE_ADDR": "10.7.0.3"}
    assert client.get(URL, headers=neighbour, buffered=True, environ_base=same_address).status_code == 200
    assert client.get(URL, headers=elsewhere.client, buffered=True).status_code == 200


def test_a_download_refused_for_busy_slots_does_not_use_the_budget(
    app, client, member, runtime, limits, monkeypatch
):
    limits(my_data_user="2 per hour")
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"export_max_concurrent": 1}))
    saved = app.extensions.pop("saas_export_slots_client_data", None)  # new slots, of the size above
    m = member()
    try:
        held = client.get(URL, headers=m.client)  # first of the budget; its stream keeps the slot
        assert held.status_code == 200
        busy = client.get(URL, headers=m.client, buffered=True)
        assert (busy.status_code, busy.headers["Retry-After"]) == (429, "30")  # the slots' answer
        held.close()
        assert client.get(URL, headers=m.client, buffered=True).status_code == 200  # second
        assert client.get(URL, headers=m.client, buffered=True).status_code == 429  # the budget's
    finally:
        app.extensions.pop("saas_export_slots_client_data", None)
        if saved is not None:
            app.extensions["saas_export_slots_client_data"] = saved
