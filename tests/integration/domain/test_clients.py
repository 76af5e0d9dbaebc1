"""Clients: the worker's CRUD, validation at the edges, search, pagination, deletion."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from sqlalchemy import select

from backend.core.db import tenant_scope
from backend.infrastructure.sql.media import media
from tests.integration.domain.conftest import API
from tests.owner import owner_engine


def test_create_then_get(workspace):
    ws = workspace()
    created = ws.create_client(name="  Ada Lovelace ", email="Ada@Example.com", phone="+44 20 7946 0000")
    assert created["name"] == "Ada Lovelace"
    assert created["email"] == "Ada@Example.com"
    assert created["notes"] is None
    assert set(created) == {"id", "name", "email", "phone", "notes", "created_at", "updated_at"}
    fetched = ws.http.get(f"{API}/clients/{created['id']}", headers=ws.worker)
    assert fetched.status_code == 200
    assert fetched.json == created


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": None}, "name"),
        ({"name": "A", "email": "not-an-email"}, "email"),
        ({"name": "A", "email": ""}, "email"),
        ({"name": "A", "phone": "call me"}, "phone"),
        ({"name": "A", "phone": "+1"}, "phone"),
        ({"name": "A", "notes": "n" * 10_001}, "notes"),
        ({"name": 7}, "name"),
    ],
)
def test_create_refuses_invalid_fields(workspace, body, field):
    ws = workspace()
    response = ws.http.post(f"{API}/clients", json=body, headers=ws.worker)
    assert response.status_code == 422
    assert response.json["detail"] == "validation_error"
    assert field in response.json["errors"]


@pytest.mark.parametrize(
    "extra", [{"id": str(uuid.uuid4())}, {"created_at": "2030-01-01T00:00:00Z"}, {"is_admin": True}]
)
def test_unknown_or_read_only_fields_are_refused(workspace, extra):
    ws = workspace()
    response = ws.http.post(f"{API}/clients", json={"name": "A", **extra}, headers=ws.worker)
    assert response.status_code == 422
    assert set(response.json["errors"]) == set(extra)
    existing = ws.create_client(name="B")
    patched = ws.http.patch(f"{API}/clients/{existing['id']}", json=extra, headers=ws.worker)
    if "created_at" in extra:
        # PATCH takes back what GET gave (read-modify-write): the timestamps are ignored.
        assert patched.status_code == 200 and patched.json["created_at"] == existing["created_at"]
        return
    assert patched.status_code == 422
    assert set(patched.json["errors"]) == set(extra)


def test_email_is_unique_per_workspace_case_insensitively(workspace):
    ws, other = workspace(), workspace()
    ws.create_client(name="A", email="same@example.com")
    response = ws.http.post(
        f"{API}/clients", json={"name": "B", "email": "SAME@example.com"}, headers=ws.worker
    )
    assert response.status_code == 409
    assert response.json == {"detail": "client_email_taken"}
    other.create_client(name="C", email="same@example.com")  # another workspace: no conflict
    b = ws.create_client(name="B", email="b@example.com")
    clash = ws.http.patch(f"{API}/clients/{b['id']}", json={"email": "same@EXAMPLE.com"}, headers=ws.worker)
    assert clash.status_code == 409
    assert clash.json == {"detail": "client_email_taken"}


def test_several_clients_without_email(workspace):
    ws = workspace()
    ws.create_client(name="A")
    ws.create_client(name="B", email=None)


def test_patch_changes_only_given_fields(workspace):
    ws = workspace()
    created = ws.create_client(name="A", email="a@example.com", notes="likes mornings")
    response = ws.http.patch(
        f"{API}/clients/{created['id']}", json={"phone": "0123 456", "notes": None}, headers=ws.worker
    )
    assert response.status_code == 200
    body = response.json
    assert (body["name"], body["email"], body["phone"], body["notes"]) == (
        "A",
        "a@example.com",
        "0123 456",
        None,
    )
    assert body["updated_at"] > created["updated_at"]
    assert body["created_at"] == created["created_at"]


@pytest.mark.parametrize("body", [{"name": None}, {"name": ""}, {"email": "nope"}])
def test_patch_refuses_invalid_fields(workspace, body):
    ws = workspace()
    created = ws.create_client(name="A")
    response = ws.http.patch(f"{API}/clients/{created['id']}", json=body, headers=ws.worker)
    assert response.status_code == 422
    assert set(response.json["errors"]) == set(body)


def test_unknown_id_is_not_found_on_every_route(workspace):
    ws = workspace()
    missing = uuid.uuid4()
    for method, body in (("get", None), ("patch", {"name": "X"}), ("delete", None)):
        response = getattr(ws.http, method)(f"{API}/clients/{missing}", json=body, headers=ws.worker)
        assert response.status_code == 404, method
        assert response.json["detail"] == "not_found"


def test_malformed_id_is_not_found(workspace):
    ws = workspace()
    response = ws.http.get(f"{API}/clients/not-a-uuid", headers=ws.worker)
    assert response.status_code == 404


def test_list_is_paginated_in_name_order_with_a_capped_page_size(workspace):
    ws = workspace()
    for name in ("delta", "Alpha", "charlie", "Bravo", "echo"):
        ws.create_client(name=name)
    first = ws.http.get(f"{API}/clients?page=1&page_size=2", headers=ws.worker)
    assert first.status_code == 200
    assert [c["name"] for c in first.json] == ["Alpha", "Bravo"]
    meta = json.loads(first.headers["X-Pagination"])
    assert meta["total"] == 5 and meta["total_pages"] == 3 and meta["next_page"] == 2
    last = ws.http.get(f"{API}/clients?page=3&page_size=2", headers=ws.worker)
    assert [c["name"] for c in last.json] == ["echo"]
    assert json.loads(last.headers["X-Pagination"])["total"] == 5
    past_the_end = ws.http.get(f"{API}/clients?page=9&page_size=2&q=a", headers=ws.worker)
    assert past_the_end.status_code == 200 and past_the_end.json == []
    assert json.loads(past_the_end.headers["X-Pagination"])["total"] == 1  # "Alpha": no row carries it
    too_big = ws.http.get(f"{API}/clients?page_size=101", headers=ws.worker)
    assert too_big.status_code == 422
    assert too_big.json["detail"] == "validation_error"


def test_search_by_name_or_email_prefix_case_insensitively(workspace):
    ws = workspace()
    ws.create_client(name="Annabel Lee", email="poe@example.com")
    ws.create_client(name="Bob", email="ANN.b@example.com")
    ws.create_client(name="Joanna", email="jo@example.com")
    ws.create_client(name="100% Fit", email=None)
    ws.create_client(name="1000 Steps", email=None)

    def names(q: str) -> list[str]:
        response = ws.http.get(f"{API}/clients", query_string={"q": q}, headers=ws.worker)
        assert response.status_code == 200
        return sorted(c["name"] for c in response.json)

    assert names("ann") == ["Annabel Lee", "Bob"]  # prefix of a name or of an email
    assert names("POE@") == ["Annabel Lee"]
    assert names("anna") == ["Annabel Lee"]  # a prefix, not a substring (not Joanna)
    assert names("100%") == ["100% Fit"]  # LIKE wildcards are literal
    assert names("_") == []
    assert ws.http.get(f"{API}/clients?q=", headers=ws.worker).status_code == 422
    assert ws.http.get(f"{API}/clients", query_string={"q": "x" * 101}, headers=ws.worker).status_code == 422


def test_delete_removes_client_and_appointments_and_soft_deletes_media(workspace, runtime):
    ws = workspace()
    keep = ws.create_client(name="Keep")
    gone = ws.create_client(name="Gone")
    ws.book(keep["id"], 0, 1)
    ws.book(gone["id"], 2, 3)
    item = ws.upload(client_id=gone["id"])
    response = ws.http.delete(f"{API}/clients/{gone['id']}", headers=ws.worker)
    assert response.status_code == 204
    assert ws.http.get(f"{API}/clients/{gone['id']}", headers=ws.worker).status_code == 404
    assert ws.http.delete(f"{API}/clients/{gone['id']}", headers=ws.worker).status_code == 404
    appointments = ws.http.get(f"{API}/appointments", headers=ws.worker).json
    assert [a["client_id"] for a in appointments] == [keep["id"]]
    assert ws.http.get(f"{API}/media/{item['id']}", headers=ws.worker).status_code == 404
    with tenant_scope(owner_engine(), ws.tenant.schema_name) as connection:
        row = connection.execute(select(media).where(media.c.id == uuid.UUID(item["id"]))).one()
    assert row.deleted_at is not None and row.client_id is None  # left for the purge
    assert (runtime.settings.media_dir / str(ws.tenant.id) / item["id"]).exists()


def test_clients_routes_are_for_workers_only(workspace, client_token):
    ws = workspace()
    existing = ws.create_client(name="A")
    _, client_headers = client_token(ws.tenant)
    for method, path, body in (
        ("get", "/clients", None),
        ("post", "/clients", {"name": "X"}),
        ("get", f"/clients/{existing['id']}", None),
        ("patch", f"/clients/{existing['id']}", {"name": "X"}),
        ("delete", f"/clients/{existing['id']}", None),
    ):
        response = getattr(ws.http, method)(f"{API}{path}", json=body, headers=client_headers)
        assert response.status_code == 403, (method, path)
        assert response.json == {"detail": "forbidden"}
    assert ws.http.get(f"{API}/clients/{existing['id']}", headers=ws.worker).json["name"] == "A"


def test_requests_without_a_token_are_unauthenticated(client):
    response = client.post(f"{API}/clients", json={"name": "A"})
    assert response.status_code == 401
    assert response.json == {"detail": "missing_token"}


def test_logs_never_carry_client_details(workspace, caplog):
    ws = workspace()
    secret = {"name": "Zebulon Quartermaine", "email": "zebulon.q@example.com", "phone": "+1 555 0199"}
    with caplog.at_level(logging.DEBUG):
        created = ws.create_client(**secret, notes="private matter")
        ws.http.post(f"{API}/clients", json={"name": "Dup", "email": secret["email"]}, headers=ws.worker)
        ws.http.patch(f"{API}/clients/{created['id']}", json={"name": "Zebulon Q."}, headers=ws.worker)
        ws.http.get(f"{API}/clients", query_string={"q": "zebulon"}, headers=ws.worker)
        ws.http.delete(f"{API}/clients/{created['id']}", headers=ws.worker)
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records).lower()
    for value in (*secret.values(), "private matter", "zebulon"):
        assert value.lower() not in logged


def test_read_modify_write_sends_the_record_back(workspace):
    """A generated client patches with what it read: the read-only fields are accepted, `id`
    only when it is this client's, the timestamps ignored; another workspace's client stays 404."""
    ws, other = workspace(), workspace()
    record = ws.create_client(name="Ada", email="ada@example.com")
    url = f"{API}/clients/{record['id']}"
    stale = {**record, "phone": "+44 20 7946 0000", "created_at": "2001-01-01T00:00:00+00:00"}
    changed = ws.http.patch(url, json=stale, headers=ws.worker)
    assert changed.status_code == 200, changed.json
    assert changed.json["phone"] == "+44 20 7946 0000"
    assert changed.json["created_at"] == record["created_at"]
    wrong_id = ws.http.patch(url, json={**record, "id": str(uuid.uuid4())}, headers=ws.worker)
    assert wrong_id.status_code == 422 and set(wrong_id.json["errors"]) == {"id"}
    foreign = other.http.patch(url, json=record, headers=other.worker)
    assert foreign.status_code == 404
