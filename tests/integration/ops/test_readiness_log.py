"""Every failed readiness check logs one JSON line naming it (backend/api/health.py), so a
503 from /health/ready is never silent."""

from __future__ import annotations

import json
import logging
import socket

from sqlalchemy.engine import make_url

from backend import create_app
from backend.core.db import sqlalchemy_url
from backend.core.logging import JsonLineFormatter
from tests.conftest import close_app

HEALTH_LOGGER = "backend.api.health"


def failed_checks(caplog) -> list[dict]:
    formatter = JsonLineFormatter()
    lines = [formatter.format(r) for r in caplog.records if r.name == HEALTH_LOGGER]
    assert all("\n" not in line for line in lines), lines
    return [json.loads(line) for line in lines]


def ready(settings, caplog, **overrides):
    application = create_app(settings.model_copy(update=overrides))
    try:
        with caplog.at_level(logging.INFO, logger=HEALTH_LOGGER):
            caplog.clear()
            return application.test_client().get("/health/ready")
    finally:
        close_app(application)


def test_database_unreachable_is_logged(settings, caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+psycopg://app:secret@127.0.0.1:{port}/saas"
    response = ready(settings, caplog, database_url=url, pool_timeout_s=2)
    assert response.status_code == 503
    assert response.json == {"detail": "database_unavailable"}
    (line,) = failed_checks(caplog)
    assert line["level"] == "WARNING" and line["logger"] == HEALTH_LOGGER
    assert line["check"] == "database"
    assert "OperationalError" in line["reason"] and "refused" in line["reason"]


def test_shared_schema_behind_is_logged(settings, caplog):
    # The server's maintenance database has no shared schema: reachable, not migrated.
    url = make_url(sqlalchemy_url(settings.database_url)).set(database="postgres")
    response = ready(settings, caplog, database_url=url.render_as_string(hide_password=False))
    assert response.status_code == 503
    assert response.json["detail"] == "schema_not_ready"
    (line,) = failed_checks(caplog)
    assert line["check"] == "shared_schema"
    assert "shared schema at None" in line["reason"]


def test_ready_logs_nothing(app, caplog):
    with caplog.at_level(logging.INFO, logger=HEALTH_LOGGER):
        assert app.test_client().get("/health/ready").status_code == 200
    assert failed_checks(caplog) == []
