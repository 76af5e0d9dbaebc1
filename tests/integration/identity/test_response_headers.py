"""Headers every response gets from one place (backend/api/headers.py), and the API docs page
that loads nothing from outside this server (issue 15, item 4)."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from tests.integration.identity.conftest import PASSWORD


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("get", "/health", {}),
        ("get", "/api/v1/me", {}),  # 401
        ("post", "/api/v1/auth/token", {"json": {"email": "nobody@example.com", "password": "x" * 12}}),
        ("get", "/api/openapi.json", {}),
        ("get", "/no/such/path", {}),  # 404 from routing
    ],
)
def test_every_answer_is_nosniff_and_not_stored_by_caches(client, method, path, kwargs):
    response = getattr(client, method)(path, **kwargs)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_token_and_personal_data_responses_are_no_store(client, signup, login):
    created, body = signup()
    assert created.status_code == 201
    tokens = login(body["email"], PASSWORD)
    assert tokens.status_code == 200 and tokens.headers["Cache-Control"] == "no-store"
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens.json['access_token']}"})
    assert me.headers["Cache-Control"] == "no-store" and me.headers["X-Content-Type-Options"] == "nosniff"
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens.json["refresh_token"]})
    assert refreshed.status_code == 200 and refreshed.headers["Cache-Control"] == "no-store"


def test_a_route_that_chooses_its_caching_keeps_it(client):
    keys = client.get("/.well-known/jwks.json")
    assert "max-age" in keys.headers["Cache-Control"] and keys.headers["X-Content-Type-Options"] == "nosniff"


def test_the_docs_page_loads_swagger_ui_from_this_server_only(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.get_data(as_text=True))
    assert sources and all(source.startswith("/") for source in sources), sources
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200 and len(asset.data) > 1000, source
        assert "max-age" in asset.headers["Cache-Control"]
    assert client.get("/api/docs/assets/../../setup.cfg").status_code == 404
    assert client.get("/api/docs/assets/swagger-ui-es-bundle.js.map").status_code == 404


def test_bearer_challenges_use_rfc6750_codes_and_keep_ours_in_detail(
    client, runtime, make_tenant, worker_token, client_token
):
    missing = client.get("/api/v1/me")
    assert missing.json == {"detail": "missing_token"}
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="api"'  # no error without a token

    garbage = client.get("/api/v1/me", headers={"Authorization": "Bearer not-a-jwt"})
    assert garbage.json == {"detail": "invalid_token"}
    assert garbage.headers["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="invalid_token"'
    )

    expired = runtime.tokens.issue(
        user_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        role="worker",
        session_id=uuid.uuid4(),
        now=time.time() - 7200,
    )
    answer = client.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert answer.json == {"detail": "token_expired"}
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    assert 'error_description="token_expired"' in answer.headers["WWW-Authenticate"]

    tenant = make_tenant()
    _, client_headers = client_token(tenant)
    forbidden = client.get("/api/v1/clients", headers=client_headers)  # a worker-only route
    assert forbidden.status_code == 403 and forbidden.json == {"detail": "forbidden"}
    assert forbidden.headers["WWW-Authenticate"] == 'Bearer realm="api", error="insufficient_scope"'
    assert client.get("/api/v1/clients", headers=worker_token(tenant)).status_code == 200


def test_retry_after_only_where_the_contract_promises_it(client):
    for _ in range(3):
        refused = client.post("/api/v1/auth/token", json={"email": "x@example.com", "password": "y" * 12})
        assert refused.status_code == 401
        assert "Retry-After" not in refused.headers
    assert "Retry-After" not in client.get("/health").headers
