"""An app of our own for the operability tests: a metrics token, a small body limit and two
routes that only tests have (the session app cannot get routes after its first request)."""

from __future__ import annotations

import io
import logging

import pytest
from flask import jsonify, request

from backend.core.logging import json_handler
from tests.conftest import close_app

METRICS_TOKEN = "metrics-token-for-tests-0123456789"
BODY_LIMIT = 1024


@pytest.fixture(scope="module")
def ops_app(settings):
    from backend import create_app

    application = create_app(
        settings.model_copy(update=dict(metrics_token=METRICS_TOKEN, max_content_length=BODY_LIMIT))
    )

    @application.post("/_test/items/<int:item_id>")
    def echo_item(item_id: int):
        logging.getLogger("tests.ops").warning("echo item %s", item_id)
        return jsonify(item_id=item_id, size=len(request.get_json()["data"]))

    yield application
    close_app(application)


@pytest.fixture()
def ops_client(ops_app):
    return ops_app.test_client()


@pytest.fixture()
def json_lines():
    """The JSON lines our handler writes during the test, parsed."""
    import json

    stream = io.StringIO()
    handler = json_handler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
