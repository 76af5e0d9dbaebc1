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
