"""Liveness and readiness, outside /api/v1 and without authentication."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy.exc import SQLAlchemyError

from backend.api.context import runtime
from backend.api.errors import error_response
from backend.infrastructure.migrations import head_revision, shared_revision

blueprint = Blueprint("health", __name__)
logger = logging.getLogger(__name__)


def not_ready(check: str, reason: str) -> None:
    """Every 503 of the readiness probe says why in one JSON line: the failed check and its
    first line (no SQL, no parameters); the probe's answer itself stays terse."""
    logger.warning("readiness check failed", extra={"check": check, "reason": reason[:500]})


@blueprint.get("/health")
def health():
    """The process is alive (no database call)."""
    return jsonify(status="ok")


@blueprint.get("/health/ready")
def ready():
    """PostgreSQL is reachable and the shared schema is at head."""
    try:
        with runtime().engine.connect() as connection:
            current = shared_revision(connection)
            connection.rollback()
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        not_ready("database", f"{type(cause).__name__}: {(str(cause).splitlines() or [''])[0]}")
        return error_response(503, "database_unavailable", headers={"Retry-After": "5"})
    if current != head_revision("shared"):
        not_ready("shared_schema", f"shared schema at {current}, code expects {head_revision('shared')}")
        return error_response(503, "schema_not_ready", f"shared schema at {current}")
    return jsonify(status="ready", shared_schema=current)
