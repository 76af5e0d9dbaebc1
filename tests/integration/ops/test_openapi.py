"""docs/openapi.json is the document the app serves, in its stable committed form."""

from __future__ import annotations

import json

from backend.cli.openapi import OPENAPI_PATH, WRITE_COMMAND, render


def test_committed_openapi_document_is_up_to_date(app):
    current = render(app)
    committed = OPENAPI_PATH.read_text() if OPENAPI_PATH.exists() else ""
    assert committed == current, (
        f"docs/openapi.json is out of date with the routes: run `{WRITE_COMMAND}` "
        "(scripts/openapi.py write) and commit the result"
    )


def test_rendering_is_stable_and_sorted(app):
    first = render(app)
    assert render(app) == first
    document = json.loads(first)
    assert list(document) == sorted(document)
    assert "/api/v1/clients" in document["paths"]
    assert "/metrics" not in document["paths"]


def test_every_operation_has_a_stable_readable_unique_operation_id(app):
    """Generated SDKs name their functions from operationIds (`list_clients`, not
    `get_api_v1_clients`); a new route without one, or a clash, fails here."""
    import re

    document = app.test_client().get("/api/openapi.json").json
    ids = [
        operation.get("operationId")
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert all(isinstance(name, str) and re.fullmatch(r"[a-z][A-Za-z]+", name) for name in ids), ids
    assert len(ids) == len(set(ids))
    # Schema names that collide with the classes a generator writes itself.
    reserved = {"Client", "AuthenticatedClient", "Response", "File", "Unset", "Types"}
    assert not reserved & set(document["components"]["schemas"]), sorted(document["components"]["schemas"])


def test_binary_responses_declare_their_media_types(app):
    document = app.test_client().get("/api/openapi.json").json
    for path, wanted in (
        ("/api/v1/export", {"application/zip"}),
        ("/api/v1/media/{media_id}/content", {"image/png"}),
    ):
        content = document["paths"][path]["get"]["responses"]["200"]["content"]
        assert wanted <= set(content), (path, sorted(content))
        assert all(item["schema"] == {"type": "string", "format": "binary"} for item in content.values())


def test_binary_answers_declare_a_type_a_generator_reads(app):
    """openapi-python-client reads only application/octet-stream as bytes: an answer typed only
    `application/zip`, or untyped, is dropped from the generated client (docs/api-integration.md)."""
    document = app.test_client().get("/api/openapi.json").json
    for path in ("/api/v1/export", "/api/v1/media/{media_id}/content"):
        content = document["paths"][path]["get"]["responses"]["200"]["content"]
        assert "application/octet-stream" in content, path
        assert all(c["schema"] == {"type": "string", "format": "binary"} for c in content.values())
    assert "application/zip" in document["paths"]["/api/v1/export"]["get"]["responses"]["200"]["content"]


def test_request_strings_state_the_rules_the_api_applies(app):
    schemas = app.test_client().get("/api/openapi.json").json["components"]["schemas"]
    assert schemas["ClientRecord"]["properties"]["name"]["pattern"] == r"^[^\x00]*$"
    password = schemas["Signup"]["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (10, 256)
    assert "pattern" not in schemas["ClientRecord"]["properties"]["id"]  # read-only: not a request string
