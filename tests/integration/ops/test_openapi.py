"""docs/openapi.json is the document the app serves, in its stable committed form."""

from __future__ import annotations

import json

from backend.api import rules
from backend.cli.openapi import OPENAPI_PATH, WRITE_COMMAND, render
from backend.core.config import DEFAULT_MEDIA_TYPES


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
    document = app.test_client().get("/api/openapi.json").json
    schemas = document["components"]["schemas"]
    assert schemas["Verify"]["properties"]["token"]["pattern"] == r"^[^\x00]*$"
    assert schemas["ClientRecordCreate"]["properties"]["name"]["pattern"] == rules.NON_BLANK
    assert schemas["ClientRecordCreate"]["properties"]["phone"]["pattern"] == rules.PHONE
    for schema, field in (("Signup", "email"), ("ClientRecordCreate", "email"), ("ChangeEmail", "new_email")):
        assert schemas[schema]["properties"][field]["pattern"] == rules.EMAIL, schema
    assert schemas["Signup"]["properties"]["workspace_slug"]["pattern"] == rules.OPTIONAL_SLUG
    assert schemas["DeletionRequest"]["properties"]["confirm_slug"]["pattern"] == rules.SLUG
    new_passwords = [("Signup", "password"), ("ResetPassword", "password")]
    new_passwords.append(("ChangePassword", "new_password"))
    for schema, field in new_passwords:
        password = schemas[schema]["properties"][field]
        assert (password["minLength"], password["maxLength"]) == (10, 256), schema
    assert schemas["AppointmentCreate"]["properties"]["status"]["enum"] == ["scheduled", "completed"]
    # Uploads: client_id required of everyone, the file's allowed types in the part's encoding.
    assert set(schemas["MediaUpload"]["required"]) == {"file", "client_id"}
    upload = document["paths"]["/api/v1/media"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["encoding"]["file"]["contentType"].split(", ") == list(DEFAULT_MEDIA_TYPES)
    # Read-only fields are not request strings.
    assert "pattern" not in schemas["ClientRecordUpdate"]["properties"]["id"]
    assert schemas["ClientRecordUpdate"]["properties"]["id"]["readOnly"] is True


def test_response_fields_always_present_are_required(app):
    """Generated models type them `X` (nullable: `X | None`), not `X | Unset`."""
    schemas = app.test_client().get("/api/openapi.json").json["components"]["schemas"]
    for name in ("ClientRecord", "Media", "User", "Tenant", "Me", "TokenResponse", "AuditEvent", "Session"):
        assert set(schemas[name]["required"]) == set(schemas[name]["properties"]), name
    # Workers alone receive an appointment's private notes and bookkeeping times.
    appointment = schemas["Appointment"]
    optional = set(appointment["properties"]) - set(appointment["required"])
    assert optional == {"notes", "created_at", "updated_at"}
    assert schemas["ClientRecord"]["properties"]["email"]["type"] == ["string", "null"]
    assert set(schemas["PaginationMetadata"]["required"]) == {"total", "total_pages"}
