"""One JSON access line per request, with request id, tenant, user, route and status, and
never the query string, the token or an email."""

from __future__ import annotations

import uuid

from backend.api.observability import REQUEST_ID_HEADER


def access_lines(lines):
    return [line for line in lines if line.get("logger") == "backend.access"]


def test_a_sane_request_id_is_kept_and_echoed(client):
    request_id = "req-" + uuid.uuid4().hex
    response = client.get("/health", headers={REQUEST_ID_HEADER: request_id})
    assert response.headers[REQUEST_ID_HEADER] == request_id


def test_an_insane_request_id_is_replaced_by_a_new_one(client):
    for bad in ("short", "x" * 200, "abc def ghi", "abcdefgh;X-Evil=1", "<script>alert(1)</script>"):
        response = client.get("/health", headers={REQUEST_ID_HEADER: bad})
        echoed = response.headers[REQUEST_ID_HEADER]
        assert echoed != bad
        assert len(echoed) == 32 and int(echoed, 16) >= 0


def test_without_a_request_id_each_request_gets_its_own(client):
    first = client.get("/health").headers[REQUEST_ID_HEADER]
    second = client.get("/health").headers[REQUEST_ID_HEADER]
    assert first != second


def test_access_line_names_tenant_user_route_and_status_but_no_secrets(
    client, make_tenant, worker_token, json_lines
):
    tenant = make_tenant()
    headers = worker_token(tenant)
    token = headers["Authorization"].split()[1]
    response = client.get(
        "/api/v1/clients?page=1&email=alice@example.com&password=hunter2",
        headers={**headers, REQUEST_ID_HEADER: "trace-0123456789"},
    )
    assert response.status_code == 200

    (line,) = access_lines(json_lines())
    assert line["request_id"] == "trace-0123456789"
    assert line["tenant_id"] == str(tenant.id)
    assert uuid.UUID(line["user_id"])
    assert line["role"] == "worker"
    assert line["route"] == "/api/v1/clients"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert line["level"] == "INFO" and line["ts"].endswith("+00:00")
    text = str(line)
    for secret in (token, "alice@example.com", "hunter2", "page=1", "127.0.0.1"):
        assert secret not in text


def test_route_is_the_url_rule_not_the_path(ops_client, json_lines):
    response = ops_client.post("/_test/items/4711", json={"data": "abc"})
    assert response.status_code == 200
    (line,) = access_lines(json_lines())
    assert line["route"] == "/_test/items/<int:item_id>"
    assert "4711" not in str(line)


def test_unrouted_paths_share_one_route_label(client, json_lines):
    client.get(f"/api/v1/{uuid.uuid4()}/probe")
    client.get("/wp-login.php")
    lines = access_lines(json_lines())
    assert [line["route"] for line in lines] == ["<unmatched>", "<unmatched>"]
    assert [line["status"] for line in lines] == [404, 404]


def test_refused_requests_are_logged_with_their_status(client, json_lines):
    client.get("/api/v1/clients")  # no token
    # answered by another before_request hook, which runs after ours
    client.post("/api/v1/clients", data="x", content_type="text/plain")
    assert [line["status"] for line in access_lines(json_lines())] == [401, 400]


def test_other_log_lines_of_a_request_carry_its_request_id(ops_client, json_lines):
    ops_client.post("/_test/items/1", json={"data": ""}, headers={REQUEST_ID_HEADER: "corr-id-77777777"})
    (warning,) = [line for line in json_lines() if line.get("logger") == "tests.ops"]
    assert warning["message"] == "echo item 1"
    assert warning["request_id"] == "corr-id-77777777"


def test_request_id_is_available_to_other_code(app):
    from flask import g

    from backend.api.observability import current_request_id

    with app.test_request_context(headers={REQUEST_ID_HEADER: "audit-trail-id-1"}):
        app.preprocess_request()
        assert current_request_id() == g.request_id == "audit-trail-id-1"
    assert current_request_id() is None
