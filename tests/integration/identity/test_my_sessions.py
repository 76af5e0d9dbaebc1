"""The caller's sessions: list (created, last used, user agent, no IP), end one, end all
others; an ended session's access tokens fail at once; another user's or another
workspace's session can be neither seen nor ended."""

from __future__ import annotations

import uuid

from sqlalchemy import update

from backend.core.passwords import hash_password
from backend.infrastructure.sql.identity import users
from tests.integration.identity.conftest import PASSWORD, bearer, mark_verified
from tests.owner import owner_engine


def logged_in(client, signup, runtime, *, agents=("Phone/1.0", "Laptop/2.0")):
    response, body = signup()
    assert response.status_code == 201, response.json
    mark_verified(runtime, uuid.UUID(response.json["user"]["id"]))
    pairs = []
    for agent in agents:
        pair = client.post(
            "/api/v1/auth/token",
            json={"email": body["email"], "password": body["password"]},
            headers={"User-Agent": agent},
        )
        assert pair.status_code == 200
        pairs.append(pair.json)
    return body, pairs


def sessions(client, pair):
    return client.get("/api/v1/me/sessions", headers=bearer(pair["access_token"]))


def test_list_shows_my_sessions_with_their_device_and_no_ip(client, signup, runtime):
    _, (phone, laptop) = logged_in(client, signup, runtime)
    listed = sessions(client, laptop)
    assert listed.status_code == 200
    items = listed.json["items"]
    assert [i["user_agent"] for i in items] == ["Laptop/2.0", "Phone/1.0"]  # newest use first
    assert [i["current"] for i in items] == [True, False]
    assert set(items[0]) == {"id", "created_at", "last_used_at", "user_agent", "current"}
    # A refresh keeps the session, moves its last use, and names the refreshing device.
    refreshed = client.post(
        "/api/v1/auth/refresh",
        json={"refresh_token": phone["refresh_token"]},
        headers={"User-Agent": "Phone/1.1"},
    ).json
    items = sessions(client, refreshed).json["items"]
    assert len(items) == 2
    assert items[0]["user_agent"] == "Phone/1.1" and items[0]["current"]
    assert items[0]["last_used_at"] > items[0]["created_at"]


def test_ending_one_session_kills_its_tokens_at_once(client, signup, runtime):
    _, (phone, laptop) = logged_in(client, signup, runtime)
    phone_id = next(i["id"] for i in sessions(client, laptop).json["items"] if not i["current"])
    assert client.get("/api/v1/me", headers=bearer(phone["access_token"])).status_code == 200
    ended = client.delete(f"/api/v1/me/sessions/{phone_id}", headers=bearer(laptop["access_token"]))
    assert ended.status_code == 204
    assert client.get("/api/v1/me", headers=bearer(phone["access_token"])).json == {"detail": "invalid_token"}
    refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert refresh.status_code == 401
    assert [i["current"] for i in sessions(client, laptop).json["items"]] == [True]
    again = client.delete(f"/api/v1/me/sessions/{phone_id}", headers=bearer(laptop["access_token"]))
    assert again.status_code == 404


def test_end_all_others_keeps_this_one(client, signup, runtime):
    _, (a, b, c) = logged_in(client, signup, runtime, agents=("A", "B", "C"))
    ended = client.post("/api/v1/me/sessions/end-others", headers=bearer(c["access_token"]))
    assert ended.status_code == 200 and ended.json == {"ended": 2}
    for pair in (a, b):
        assert client.get("/api/v1/me", headers=bearer(pair["access_token"])).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(c["access_token"])).status_code == 200
    assert [i["user_agent"] for i in sessions(client, c).json["items"]] == ["C"]


def test_another_users_session_is_invisible_and_cannot_be_ended(client, signup, runtime):
    _, (mine,) = logged_in(client, signup, runtime, agents=("Mine",))
    _, (theirs,) = logged_in(client, signup, runtime, agents=("Theirs",))  # another workspace
    their_id = sessions(client, theirs).json["items"][0]["id"]
    assert [i["user_agent"] for i in sessions(client, mine).json["items"]] == ["Mine"]
    refused = client.delete(f"/api/v1/me/sessions/{their_id}", headers=bearer(mine["access_token"]))
    assert refused.status_code == 404 and refused.json["detail"] == "not_found"
    assert client.post("/api/v1/me/sessions/end-others", headers=bearer(mine["access_token"])).json == {
        "ended": 0
    }
    assert client.get("/api/v1/me", headers=bearer(theirs["access_token"])).status_code == 200


def test_a_client_and_the_worker_of_one_workspace_see_only_their_own(client, member, runtime):
    m = member()
    with owner_engine().begin() as connection:
        connection.execute(
            update(users)
            .where(users.c.id.in_([m.worker_id, m.client_user_id]))
            .values(password_hash=hash_password(PASSWORD))
        )
    slug = m.tenant.slug
    worker = _login(client, f"owner-{slug}@example.com", "WorkerApp")
    client_pair = _login(client, f"c-{slug}@example.com", "ClientApp")
    worker_items = sessions(client, worker).json["items"]
    # (the fixture's own tokens carry a session too, without a user agent)
    assert {i["user_agent"] for i in worker_items} - {None} == {"WorkerApp"}
    assert {i["user_agent"] for i in sessions(client, client_pair).json["items"]} - {None} == {"ClientApp"}
    worker_items = [i for i in worker_items if i["user_agent"] == "WorkerApp"]
    refused = client.delete(
        f"/api/v1/me/sessions/{worker_items[0]['id']}", headers=bearer(client_pair["access_token"])
    )
    assert refused.status_code == 404
    assert client.get("/api/v1/me", headers=bearer(worker["access_token"])).status_code == 200


def _login(client, email, agent):
    response = client.post(
        "/api/v1/auth/token", json={"email": email, "password": PASSWORD}, headers={"User-Agent": agent}
    )
    assert response.status_code == 200, response.json
    return response.json
