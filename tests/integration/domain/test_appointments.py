"""Appointments: booking rules, the no-overlap constraint, filters, and the client's view."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.domain.conftest import API, at, past

WORKER_FIELDS = {
    "id",
    "client_id",
    "starts_at",
    "ends_at",
    "status",
    "notes",
    "shared_notes",
    "cancelled_at",
    "created_at",
    "updated_at",
}
CLIENT_FIELDS = {"id", "client_id", "starts_at", "ends_at", "status", "shared_notes", "cancelled_at"}


def test_book_then_get(workspace):
    ws = workspace()
    person = ws.create_client(name="A")
    booked = ws.book(person["id"], 0, 1, notes="knee injury", shared_notes="bring water")
    assert set(booked) == WORKER_FIELDS
    assert booked["status"] == "scheduled"
    assert booked["starts_at"] == at(0) and booked["ends_at"] == at(1)
    assert booked["cancelled_at"] is None
    fetched = ws.http.get(f"{API}/appointments/{booked['id']}", headers=ws.worker)
    assert fetched.status_code == 200 and fetched.json == booked


def test_instants_with_any_offset_are_normalised_to_utc(workspace):
    ws = workspace()
    person = ws.create_client(name="A")
    body = {
        "client_id": person["id"],
        "starts_at": "2030-06-03T11:00:00+02:00",
        "ends_at": "2030-06-03T10:30:00Z",
    }
    response = ws.http.post(f"{API}/appointments", json=body, headers=ws.worker)
    assert response.status_code == 201
    assert response.json["starts_at"] == "2030-06-03T09:00:00+00:00"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"starts_at": "2030-06-03T09:00:00"}, "starts_at"),  # no offset: refused, not guessed
        ({"ends_at": "2030-06-03T10:00:00"}, "ends_at"),
        ({"ends_at": at(-1)}, "ends_at"),  # ends before it starts
        ({"ends_at": at(0)}, "ends_at"),  # zero length
        ({"starts_at": "tomorrow"}, "starts_at"),
        ({"status": "cancelled"}, "status"),  # a new appointment is not cancelled
        ({"status": "maybe"}, "status"),
        ({"client_id": "nope"}, "client_id"),
        ({"notes": "n" * 10_001}, "notes"),
        ({"id": str(uuid.uuid4())}, "id"),  # read-only
        ({"cancelled_at": at(0)}, "cancelled_at"),  # read-only
        ({"owner": "me"}, "owner"),  # unknown
    ],
)
def test_booking_refuses_invalid_input(workspace, change, field):
    ws = workspace()
    person = ws.create_client(name="A")
    body = {"client_id": person["id"], "starts_at": at(0), "ends_at": at(1), **change}
    response = ws.http.post(f"{API}/appointments", json=body, headers=ws.worker)
    assert response.status_code == 422
    assert response.json["detail"] == "validation_error"
    assert field in response.json["errors"]


@pytest.mark.parametrize("missing", ["client_id", "starts_at", "ends_at"])
def test_booking_requires_client_and_period(workspace, missing):
    ws = workspace()
    person = ws.create_client(name="A")
    body = {"client_id": person["id"], "starts_at": at(0), "ends_at": at(1)}
    del body[missing]
    response = ws.http.post(f"{API}/appointments", json=body, headers=ws.worker)
    assert response.status_code == 422
    assert missing in response.json["errors"]


def test_booking_for_an_unknown_or_foreign_client_is_not_found(workspace):
    ws, other = workspace(), workspace()
    foreign = other.create_client(name="Elsewhere")
    for client_id in (foreign["id"], str(uuid.uuid4())):
        body = {"client_id": client_id, "starts_at": at(0), "ends_at": at(1)}
        response = ws.http.post(f"{API}/appointments", json=body, headers=ws.worker)
        assert response.status_code == 404
        assert response.json["detail"] == "not_found"


def test_overlapping_appointments_conflict_unless_cancelled(workspace):
    ws = workspace()
    a, b = ws.create_client(name="A"), ws.create_client(name="B")
    first = ws.book(a["id"], 0, 2)
    for start, end in ((1, 3), (-1, 1), (0.5, 1.5), (-1, 3), (0, 2)):
        body = {"client_id": b["id"], "starts_at": at(start), "ends_at": at(end)}
        response = ws.http.post(f"{API}/appointments", json=body, headers=ws.worker)
        assert response.status_code == 409, (start, end)
        assert response.json == {"detail": "appointment_overlap"}
    ws.book(b["id"], 2, 3)  # back to back: the end is exclusive
    ws.book(b["id"], -1, 0)
    cancelled = ws.http.post(f"{API}/appointments/{first['id']}/cancel", headers=ws.worker)
    assert cancelled.status_code == 200
    replacement = ws.book(b["id"], 0, 2)  # the cancelled one no longer holds the slot
    reopen = ws.http.patch(
        f"{API}/appointments/{first['id']}", json={"status": "scheduled"}, headers=ws.worker
    )
    assert reopen.status_code == 409
    assert reopen.json == {"detail": "appointment_overlap"}
    move = ws.http.patch(
        f"{API}/appointments/{replacement['id']}", json={"ends_at": at(2.5)}, headers=ws.worker
    )
    assert move.status_code == 409


def test_other_workspaces_do_not_block_a_slot(workspace):
    ws, other = workspace(), workspace()
    ws.book(ws.create_client(name="A")["id"], 0, 1)
    other.book(other.create_client(name="B")["id"], 0, 1)


def test_patch_changes_time_status_and_notes(workspace):
    ws = workspace()
    booked = ws.book(ws.create_client(name="A")["id"], 0, 1)
    url = f"{API}/appointments/{booked['id']}"
    moved = ws.http.patch(
        url, json={"starts_at": at(0.5), "ends_at": at(1.5), "notes": "late"}, headers=ws.worker
    )
    assert moved.status_code == 200
    assert (moved.json["starts_at"], moved.json["ends_at"], moved.json["notes"]) == (at(0.5), at(1.5), "late")
    cancelled = ws.http.patch(url, json={"status": "cancelled"}, headers=ws.worker).json
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"] is not None
    done = ws.http.patch(url, json={"status": "completed"}, headers=ws.worker).json
    assert done["status"] == "completed" and done["cancelled_at"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"starts_at": at(5)}, "ends_at"),  # now starts after its end
        ({"ends_at": at(0)}, "ends_at"),
        ({"ends_at": "2030-06-03T10:00:00"}, "ends_at"),
        ({"client_id": str(uuid.uuid4())}, "client_id"),  # the client is fixed once booked
        ({"created_at": at(0)}, "created_at"),
        ({"status": "done"}, "status"),
    ],
)
def test_patch_refuses_invalid_input(workspace, change, field):
    ws = workspace()
    booked = ws.book(ws.create_client(name="A")["id"], 0, 1)
    response = ws.http.patch(f"{API}/appointments/{booked['id']}", json=change, headers=ws.worker)
    assert response.status_code == 422
    assert field in response.json["errors"]


def test_delete(workspace):
    ws = workspace()
    booked = ws.book(ws.create_client(name="A")["id"], 0, 1)
    assert ws.http.delete(f"{API}/appointments/{booked['id']}", headers=ws.worker).status_code == 204
    assert ws.http.get(f"{API}/appointments/{booked['id']}", headers=ws.worker).status_code == 404
    assert ws.http.delete(f"{API}/appointments/{booked['id']}", headers=ws.worker).status_code == 404


def test_unknown_id_is_not_found_on_every_route(workspace):
    ws = workspace()
    missing = f"{API}/appointments/{uuid.uuid4()}"
    for method, path, body in (
        ("get", missing, None),
        ("patch", missing, {"notes": "x"}),
        ("delete", missing, None),
        ("post", f"{missing}/cancel", None),
    ):
        assert getattr(ws.http, method)(path, json=body, headers=ws.worker).status_code == 404


def test_list_filters_by_client_status_and_start_window(workspace):
    ws = workspace()
    a, b = ws.create_client(name="A"), ws.create_client(name="B")
    a1 = ws.book(a["id"], 0, 1)
    b1 = ws.book(b["id"], 1, 2)
    a2 = ws.book(a["id"], 24, 25)
    b2 = ws.book(b["id"], 48, 49, status="completed")

    def ids(**query) -> list[str]:
        response = ws.http.get(f"{API}/appointments", query_string=query, headers=ws.worker)
        assert response.status_code == 200, response.json
        return [item["id"] for item in response.json]

    assert ids() == [a1["id"], b1["id"], a2["id"], b2["id"]]  # in time order
    assert ids(client_id=a["id"]) == [a1["id"], a2["id"]]
    assert ids(status="completed") == [b2["id"]]
    assert ids(**{"from": at(1), "to": at(48)}) == [b1["id"], a2["id"]]  # start in [from, to)
    assert ids(**{"from": at(24)}) == [a2["id"], b2["id"]]
    assert ids(client_id=b["id"], status="scheduled", to=at(30)) == [b1["id"]]
    assert ids(client_id=str(uuid.uuid4())) == []
    page = ws.http.get(f"{API}/appointments?page=2&page_size=3", headers=ws.worker)
    assert [item["id"] for item in page.json] == [b2["id"]]
    assert json.loads(page.headers["X-Pagination"])["total"] == 4


@pytest.mark.parametrize(
    "query",
    [
        {"from": at(5), "to": at(5)},
        {"from": at(5), "to": at(1)},
        {"from": "2030-06-03T09:00:00"},  # no offset
        {"status": "maybe"},
        {"client_id": "nope"},
        {"page_size": 1000},
    ],
)
def test_list_refuses_invalid_filters(workspace, query):
    ws = workspace()
    response = ws.http.get(f"{API}/appointments", query_string=query, headers=ws.worker)
    assert response.status_code == 422
    assert response.json["detail"] == "validation_error"


def test_a_client_sees_only_their_own_appointments_without_private_notes(workspace, client_token):
    ws = workspace()
    me, my_headers = client_token(ws.tenant, name="Me")
    someone = ws.create_client(name="Someone")
    mine = ws.book(me, 0, 1, notes="worker-only remark", shared_notes="see you")
    theirs = ws.book(someone["id"], 2, 3)
    listed = ws.http.get(f"{API}/appointments", headers=my_headers)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json] == [mine["id"]]
    assert set(listed.json[0]) == CLIENT_FIELDS
    assert listed.json[0]["shared_notes"] == "see you"
    assert "worker-only remark" not in listed.get_data(as_text=True)
    assert json.loads(listed.headers["X-Pagination"])["total"] == 1
    one = ws.http.get(f"{API}/appointments/{mine['id']}", headers=my_headers)
    assert one.status_code == 200 and set(one.json) == CLIENT_FIELDS
    assert ws.http.get(f"{API}/appointments/{theirs['id']}", headers=my_headers).status_code == 404
    filtered = ws.http.get(
        f"{API}/appointments", query_string={"client_id": someone["id"]}, headers=my_headers
    )
    assert filtered.status_code == 200 and filtered.json == []


def test_a_client_may_not_book_change_or_delete(workspace, client_token):
    ws = workspace()
    me, my_headers = client_token(ws.tenant)
    mine = ws.book(me, 0, 1)
    for method, path, body in (
        ("post", "/appointments", {"client_id": str(me), "starts_at": at(5), "ends_at": at(6)}),
        ("patch", f"/appointments/{mine['id']}", {"notes": "x"}),
        ("delete", f"/appointments/{mine['id']}", None),
    ):
        response = getattr(ws.http, method)(f"{API}{path}", json=body, headers=my_headers)
        assert response.status_code == 403, (method, path)
        assert response.json == {"detail": "forbidden"}
    assert ws.http.get(f"{API}/appointments/{mine['id']}", headers=ws.worker).json == mine


def test_a_client_cancels_their_own_upcoming_appointment(workspace, client_token):
    ws = workspace()
    me, my_headers = client_token(ws.tenant)
    mine = ws.book(me, 0, 1)
    response = ws.http.post(f"{API}/appointments/{mine['id']}/cancel", headers=my_headers)
    assert response.status_code == 200
    assert response.json["status"] == "cancelled" and response.json["cancelled_at"] is not None
    assert set(response.json) == CLIENT_FIELDS
    again = ws.http.post(f"{API}/appointments/{mine['id']}/cancel", headers=my_headers)
    assert again.status_code == 200 and again.json == response.json  # idempotent
    worker_view = ws.http.get(f"{API}/appointments/{mine['id']}", headers=ws.worker).json
    assert worker_view["status"] == "cancelled"


def test_past_or_completed_appointments_cannot_be_cancelled(workspace, client_token):
    ws = workspace()
    me, my_headers = client_token(ws.tenant)
    body = {"client_id": str(me), "starts_at": past(0), "ends_at": past(1)}
    old = ws.http.post(f"{API}/appointments", json=body, headers=ws.worker).json
    done = ws.book(me, 0, 1, status="completed")
    for item in (old, done):
        for headers in (my_headers, ws.worker):
            response = ws.http.post(f"{API}/appointments/{item['id']}/cancel", headers=headers)
            assert response.status_code == 409
            assert response.json["detail"] == "appointment_not_cancellable"


def test_a_client_cannot_cancel_someone_elses_appointment(workspace, client_token):
    ws = workspace()
    _, my_headers = client_token(ws.tenant)
    theirs = ws.book(ws.create_client(name="Other")["id"], 0, 1)
    response = ws.http.post(f"{API}/appointments/{theirs['id']}/cancel", headers=my_headers)
    assert response.status_code == 404
    assert ws.http.get(f"{API}/appointments/{theirs['id']}", headers=ws.worker).json["status"] == "scheduled"


def test_the_widest_accepted_instants_round_trip(workspace):
    """The edges just inside years 1-9999 in UTC are stored and read back (the refused ones:
    tests/integration/domain/test_hostile_input.py)."""
    ws = workspace()
    person = ws.create_client(name="A")
    body = {
        "client_id": person["id"],
        "starts_at": "0001-01-02T00:00:00+14:00",
        "ends_at": "9999-12-30T23:00:00-12:00",
    }
    response = ws.http.post(f"{API}/appointments", json=body, headers=ws.worker)
    assert response.status_code == 201, response.json
    assert ws.http.get(f"{API}/appointments", headers=ws.worker).status_code == 200
