"""Input that once made the API answer 500 (issue 15, item 6) now gets the error body with a
400 or 422, and nothing is written: JSON nested thousands of levels deep, lone surrogates in
strings, and instants at the edges of the calendar."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import API

DEEP = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 5000 + "1" + "}" * 5000


def assert_refused(response, statuses=(400, 422)) -> None:
    assert response.status_code in statuses, (response.status_code, response.get_data(as_text=True)[:200])
    assert response.is_json and isinstance(response.json.get("detail"), str)


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, '{"email": ' + DEEP + "}"])
@pytest.mark.parametrize("path", ["/auth/token", "/auth/signup", "/auth/verify/resend", "/auth/refresh"])
def test_deeply_nested_json_without_login_is_a_bad_request(client, path, body):
    response = client.post(f"{API}{path}", data=body, content_type="application/json")
    assert_refused(response, statuses=(400,))
    assert response.json["detail"] == "bad_request"


def test_deeply_nested_json_on_a_protected_route_writes_nothing(workspace):
    ws = workspace()
    response = ws.http.post(
        f"{API}/clients", data=DEEP_OBJECT, content_type="application/json", headers=ws.worker
    )
    assert_refused(response, statuses=(400,))
    assert ws.http.get(f"{API}/clients", headers=ws.worker).json == []


LONE = '"\\ud800"'


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/auth/token", '{"email": ' + LONE + ', "password": "correct horse battery"}'),
        ("/auth/token", '{"email": "a@example.com", "password": ' + LONE + "}"),
        (
            "/auth/signup",
            '{"email": ' + LONE + ', "password": "correct horse battery", "name": "A",'
            ' "workspace_name": "W"}',
        ),
        ("/auth/verify", '{"token": ' + LONE + "}"),
        ("/auth/refresh", '{"refresh_token": ' + LONE + "}"),
        ("/auth/invitations/accept", '{"token": ' + LONE + ', "password": "correct horse battery"}'),
    ],
)
def test_a_lone_surrogate_in_a_public_route_is_refused(client, path, body):
    response = client.post(f"{API}{path}", data=body, content_type="application/json")
    assert_refused(response, statuses=(422,))


def test_a_lone_surrogate_in_a_name_writes_nothing(workspace):
    ws = workspace()
    response = ws.http.post(
        f"{API}/clients", data='{"name": "A\\udfffB"}', content_type="application/json", headers=ws.worker
    )
    assert_refused(response, statuses=(422,))
    assert "name" in response.json["errors"]
    assert ws.http.get(f"{API}/clients", headers=ws.worker).json == []


@pytest.mark.parametrize(
    ("starts_at", "ends_at"),
    [
        ("0001-01-01T00:00:00+14:00", "0001-01-01T01:00:00+14:00"),  # before year 1 in UTC
        ("9999-12-31T23:00:00-12:00", "9999-12-31T23:30:00-12:00"),  # after year 9999 in UTC
    ],
)
def test_instants_python_cannot_read_back_are_refused_before_they_are_stored(workspace, starts_at, ends_at):
    ws = workspace()
    client_id = ws.create_client(name="Edge")["id"]
    body = {"client_id": client_id, "starts_at": starts_at, "ends_at": ends_at}
    response = ws.http.post(f"{API}/appointments", json=body, headers=ws.worker)
    assert_refused(response, statuses=(422,))
    assert "starts_at" in response.json["errors"] or "ends_at" in response.json["errors"]
    listed = ws.http.get(f"{API}/appointments", headers=ws.worker)
    assert listed.status_code == 200 and listed.json == []


# The same classes as strategies, so that new routes and fields keep being tried with them.
HOSTILE_TEXT = st.one_of(
    # Lone surrogates: high ones only (a high one followed by a low one would be a valid pair).
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDBFF), min_size=1, max_size=3),
    st.text(alphabet=st.characters(min_codepoint=0xDC00, max_codepoint=0xDFFF), min_size=1, max_size=1),
    st.builds(lambda a, b: a + "\x00" + b, st.text(max_size=5), st.text(max_size=5)),
)
EDGE_INSTANT = st.sampled_from(
    [
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59-00:01",
        "9999-12-31T23:00:00-12:00",
    ]
)
PUBLIC_BODIES = {
    "/auth/token": ("email", "password"),
    "/auth/signup": ("email", "password", "name", "workspace_name"),
    "/auth/verify": ("token",),
    "/auth/verify/resend": ("email",),
    "/auth/refresh": ("refresh_token",),
    "/auth/invitations/accept": ("token", "password", "name"),
}


def _encoded(body: dict) -> str:
    return json.dumps(body)  # ensure_ascii: a lone surrogate travels as its \\u escape


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(sorted(PUBLIC_BODIES)),
    hostile_field=st.integers(min_value=0, max_value=3),
    text=HOSTILE_TEXT,
    depth=st.integers(min_value=900, max_value=6000),
    nested=st.booleans(),
)
def test_hostile_bodies_never_make_a_public_route_fail(client, path, hostile_field, text, depth, nested):
    fields = PUBLIC_BODIES[path]
    body = {name: "correct horse battery staple" for name in fields}
    body[fields[hostile_field % len(fields)]] = text
    raw = _encoded(body) if not nested else '{"email": ' + "[" * depth + "]" * depth + "}"
    response = client.post(f"{API}{path}", data=raw, content_type="application/json")
    assert response.status_code < 500, (path, response.status_code)
    assert response.is_json and "detail" in response.json


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(instant=EDGE_INSTANT, text=HOSTILE_TEXT)
def test_hostile_fields_never_make_a_tenant_route_fail(workspace_once, instant, text):
    ws, client_id = workspace_once
    booked = ws.http.post(
        f"{API}/appointments",
        data=_encoded({"client_id": client_id, "starts_at": instant, "ends_at": instant, "notes": text}),
        content_type="application/json",
        headers=ws.worker,
    )
    assert booked.status_code == 422, booked.get_data(as_text=True)[:200]
    named = ws.http.post(
        f"{API}/clients", data=_encoded({"name": text}), content_type="application/json", headers=ws.worker
    )
    assert named.status_code == 422


@pytest.fixture()
def workspace_once(workspace):
    ws = workspace()
    return ws, ws.create_client(name="Target")["id"]


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"json": {"client_id": "x"}}, "JSON where multipart is required"),
        ({"data": b"", "content_type": "application/json"}, "an empty JSON body"),
        ({"data": b""}, "an empty body without a type"),
    ],
)
def test_an_upload_with_the_wrong_body_type_is_a_bad_request(workspace, kwargs, why):
    ws = workspace()
    response = ws.http.post(f"{API}/media", headers=ws.worker, **kwargs)
    assert response.status_code == 400 and response.json["detail"] == "bad_request", (why, response.json)


def test_multipart_where_json_is_required_is_a_bad_request(workspace):
    ws = workspace()
    response = ws.http.post(
        f"{API}/clients", data={"name": "Via form"}, content_type="multipart/form-data", headers=ws.worker
    )
    assert response.status_code == 400 and response.json["detail"] == "bad_request"
    assert ws.http.get(f"{API}/clients", headers=ws.worker).json == []
