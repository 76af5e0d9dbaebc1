"""One error body for every layer: `{"detail": code, "message"?: text, "errors"?: {...}}`."""

from __future__ import annotations

import logging

import marshmallow as ma
from flask import Response, jsonify
from psycopg.errors import LockNotAvailable
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from backend.core.tokens import TokenError
from backend.domain import errors as domain

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}
DOMAIN_STATUS = {
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.Invalid: 422,
    domain.TooLarge: 413,
    domain.UnsupportedType: 415,
    domain.Unauthenticated: 401,
    domain.Forbidden: 403,
    domain.Unavailable: 503,
}
RETRY_AFTER_S = 5


class ErrorSchema(ma.Schema):
    detail = ma.fields.String(required=True, metadata={"description": "Stable error code"})
    message = ma.fields.String(metadata={"description": "Human-readable explanation"})
    errors = ma.fields.Dict(metadata={"description": "Field -> messages (422 only)"})


def error_response(
    status: int,
    code: str,
    message: str | None = None,
    errors: dict | None = None,
    headers: dict | None = None,
) -> Response:
    body: dict = {"detail": code}
    if message:
        body["message"] = message
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    challenge = _bearer_challenge(status, code)
    if challenge:
        response.headers["WWW-Authenticate"] = challenge
    return response


# RFC 6750 section 3.1 knows three error codes; ours stay in the body's `detail`, and the
# challenge names the standard one (a missing token gets a challenge without an error).
RFC6750_ERRORS = {
    "invalid_token": "invalid_token",
    "token_expired": "invalid_token",
    "forbidden": "insufficient_scope",
}


def _bearer_challenge(status: int, code: str) -> str | None:
    standard = RFC6750_ERRORS.get(code)
    if status == 401:
        if standard is None:
            return 'Bearer realm="api"'
        return f'Bearer realm="api", error="{standard}", error_description="{code}"'
    if status == 403 and standard is not None:
        return f'Bearer realm="api", error="{standard}"'
    return None


def _field_errors(messages: dict) -> dict:
    """webargs nests errors under their location (`json`, `query`); the contract does not."""
    flat: dict = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


def from_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    headers = dict(data.get("headers") or {})
    # RFC 9110 15.5.6: a 405 says which methods the resource allows.
    headers.update((name, value) for name, value in error.get_headers() if name == "Allow")
    if status == 422:
        return error_response(422, "validation_error", errors=_field_errors(data.get("messages", {})))
    if status >= 500:
        return error_response(status, "internal_error")
    code = data.get("detail") or HTTP_CODES.get(status, "bad_request")
    if status == 429:
        headers.setdefault("Retry-After", str(getattr(error, "retry_after", None) or RETRY_AFTER_S))
    return error_response(status, code, data.get("message"), headers=headers)


def from_domain_error(error: domain.DomainError) -> Response:
    status = next(s for kind, s in DOMAIN_STATUS.items() if isinstance(error, kind))
    headers = {}
    if isinstance(error, domain.Unavailable):
        headers["Retry-After"] = str(error.retry_after_s)
    errors = error.errors if isinstance(error, domain.Invalid) else None
    return error_response(status, error.code, error.message, errors, headers)


def from_token_error(error: TokenError) -> Response:
    return error_response(401, error.code)


def from_database_error(error: Exception) -> Response:
    """PostgreSQL unreachable, a backend killed, or the pool exhausted: 503, never a trace.

    A lock wait that hit the runtime role's `lock_timeout` (SQLSTATE 55P03) means the tenant's
    tables are held by a schema change (a migration, a purge): 503 `tenant_unavailable`, so a
    request queues at most `lock_timeout` behind it and the client knows to retry."""
    if isinstance(getattr(error, "orig", None), LockNotAvailable):
        log.warning("tenant unavailable: lock timeout")
        return error_response(503, "tenant_unavailable", headers={"Retry-After": str(RETRY_AFTER_S)})
    cause = getattr(error, "orig", None)
    # The driver's class and SQLSTATE say which fault it was (no message: it may carry values).
    log.warning(
        "database unavailable: %s (%s, sqlstate %s)",
        type(error).__name__,
        type(cause).__name__ if cause is not None else "-",
        getattr(cause, "sqlstate", None) or "-",
    )
    return error_response(503, "database_unavailable", headers={"Retry-After": str(RETRY_AFTER_S)})


def from_unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return from_http_exception(error)
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return from_database_error(error)
    log.exception("unhandled error")
    return error_response(500, "internal_error")


def register(app) -> None:
    app.register_error_handler(domain.DomainError, from_domain_error)
    app.register_error_handler(TokenError, from_token_error)
    app.register_error_handler(OperationalError, from_database_error)
    app.register_error_handler(PoolTimeoutError, from_database_error)
    app.register_error_handler(Exception, from_unexpected)
