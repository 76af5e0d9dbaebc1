"""Isolation on every read and write route: another tenant's ids, and within a tenant another
client's ids, are 404 (never 403, never 200), and nothing of theirs changes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.integration.domain.conftest import API, upload


@dataclass
class Party:
    """One client of a workspace with their token, an appointment and a file."""

    client_id: str
    headers: dict
    appointment: str
    media: str


@dataclass
class World:
    ws: object
    first: Party
    second: Party


def _party(ws, client_token, name: str, hour: int) -> Party:
    client_id, headers = client_token(ws.tenant, name=name)
    appointment = ws.book(client_id, hour, hour + 1)["id"]
    media = ws.upload(client_id=client_id, appointment_id=appointment)["id"]
    return Party(str(client_id), headers, appointment, media)


@pytest.fixture()
def worlds(workspace, client_token) -> tuple[World, World]:
    made = []
    for _ in range(2):
        ws = workspace()
        made.append(World(ws, _party(ws, client_token, "First", 0), _party(ws, client_token, "Second", 2)))
    return made[0], made[1]


def snapshot(world: World, party: Party) -> list:
    """Everything of a party, as the owning workspace's worker sees it."""
    ws = world.ws
    paths = (
        f"/clients/{party.client_id}",
        f"/appointments/{party.appointment}",
        f"/media/{party.media}",
        f"/media/{party.media}/content",
    )
    responses = [ws.http.get(f"{API}{path}", headers=ws.worker) for path in paths]
    assert all(r.status_code == 200 for r in responses)
    return [r.get_data() for r in responses]


def id_routes(target: Party) -> list[tuple[str, str, dict | None]]:
    """Every route that names an object in its path, pointed at `target`'s objects."""
    return [
        ("get", f"/clients/{target.client_id}", None),
        ("patch", f"/clients/{target.client_id}", {"name": "Taken over"}),
        ("delete", f"/clients/{target.client_id}", None),
        ("get", f"/appointments/{target.appointment}", None),
        ("patch", f"/appointments/{target.appointment}", {"notes": "mine now"}),
        ("delete", f"/appointments/{target.appointment}", None),
        ("post", f"/appointments/{target.appointment}/cancel", None),
        ("get", f"/media/{target.media}", None),
        ("get", f"/media/{target.media}/content", None),
        ("delete", f"/media/{target.media}", None),
    ]


CLIENT_ROUTES = {
    ("get", "/appointments/"),
    ("post", "/cancel"),
    ("get", "/media/"),
    ("delete", "/media/"),
}


def client_may_call(method: str, path: str) -> bool:
    if path.endswith("/cancel"):
        return method == "post"
    return (method, path[: path.index("/", 1) + 1]) in CLIENT_ROUTES


def test_a_worker_cannot_reach_another_workspace(worlds):
    mine, theirs = worlds
    ws = mine.ws
    before = snapshot(theirs, theirs.first)
    for method, path, body in id_routes(theirs.first):
        response = getattr(ws.http, method)(f"{API}{path}", json=body, headers=ws.worker)
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.json["detail"] == "not_found"
    # Ids in bodies and filters.
    foreign = theirs.first
    booking = {
        "client_id": foreign.client_id,
        "starts_at": "2031-01-01T09:00:00Z",
        "ends_at": "2031-01-01T10:00:00Z",
    }
    assert ws.http.post(f"{API}/appointments", json=booking, headers=ws.worker).status_code == 404
    assert upload(ws.http, ws.worker, client_id=foreign.client_id).status_code == 404
    linked = upload(ws.http, ws.worker, client_id=mine.first.client_id, appointment_id=foreign.appointment)
    assert linked.status_code == 404
    for path in (f"/appointments?client_id={foreign.client_id}", f"/media?client_id={foreign.client_id}"):
        assert ws.http.get(f"{API}{path}", headers=ws.worker).json == []
    assert ws.http.get(f"{API}/media?appointment_id={foreign.appointment}", headers=ws.worker).json == []
    assert snapshot(theirs, theirs.first) == before


def test_a_client_cannot_reach_another_workspace(worlds):
    mine, theirs = worlds
    before = snapshot(theirs, theirs.first)
    for method, path, body in id_routes(theirs.first):
        if not client_may_call(method, path):
            continue
        response = getattr(mine.ws.http, method)(f"{API}{path}", json=body, headers=mine.first.headers)
        assert response.status_code == 404, (method, path, response.status_code)
    assert snapshot(theirs, theirs.first) == before


def test_a_client_cannot_reach_another_client_of_the_same_workspace(worlds):
    world, _ = worlds
    me, other = world.first, world.second
    http = world.ws.http
    before = snapshot(world, other)
    called = 0
    for method, path, body in id_routes(other):
        if not client_may_call(method, path):
            continue
        called += 1
        response = getattr(http, method)(f"{API}{path}", json=body, headers=me.headers)
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.json["detail"] == "not_found"
    assert called == 5  # get and cancel an appointment; get, download and delete a file
    assert upload(http, me.headers, client_id=other.client_id).status_code == 404
    assert (
        upload(http, me.headers, client_id=me.client_id, appointment_id=other.appointment).status_code == 404
    )
    for path in ("/appointments", "/media"):
        listed = http.get(f"{API}{path}", headers=me.headers).json
        assert {item["client_id"] for item in listed} == {me.client_id}
    assert snapshot(world, other) == before
