"""Every error, from every layer, is {"detail": code, ...} and never a stack trace."""

from __future__ import annotations

import pytest

from backend import create_app
from tests.conftest import close_app


@pytest.fixture()
def crashing_app(settings):
    application = create_app(settings)

    @application.get("/boom")
    def boom():
        raise RuntimeError("secret internals /etc/passwd")

    yield application
    close_app(application)


def test_unknown_route_is_404_not_found(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json == {"detail": "not_found"}


def test_wrong_method_is_405(client):
    response = client.delete("/health")
    assert response.status_code == 405
    assert response.json["detail"] == "method_not_allowed"


def test_invalid_query_is_422_with_field_errors(client, make_tenant, worker_token):
    response = client.get("/api/v1/clients?page=0&page_size=100000", headers=worker_token(make_tenant()))
    assert response.status_code == 422
    assert response.json["detail"] == "validation_error"
    assert set(response.json["errors"]) == {"page", "page_size"}
    assert "code" not in response.json and "status" not in response.json


def test_unexpected_exception_is_500_without_trace(crashing_app):
    response = crashing_app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.json == {"detail": "internal_error"}
    assert b"Traceback" not in response.data and b"passwd" not in response.data


def test_missing_token_is_401_with_code_and_challenge(client):
    response = client.get("/api/v1/clients")
    assert response.status_code == 401
    assert response.json == {"detail": "missing_token"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_garbage_token_is_401_invalid_token(client):
    response = client.get("/api/v1/clients", headers={"Authorization": "Bearer not.a.jwt"})
    assert response.status_code == 401
    assert response.json == {"detail": "invalid_token"}


def test_body_of_the_wrong_content_type_is_400(client, make_tenant, worker_token):
    response = client.post(
        "/api/v1/clients",
        data="name=x",
        headers={**worker_token(make_tenant()), "Content-Type": "text/plain"},
    )
    assert response.status_code == 400
    assert response.json["detail"] == "bad_request"


def test_openapi_document_uses_the_error_schema(client):
    spec = client.get("/api/openapi.json").json
    error = spec["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"detail", "message", "errors"}
