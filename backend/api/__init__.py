"""HTTP entry point: marshmallow schemas and flask-smorest blueprints, one package per area."""

from __future__ import annotations

import marshmallow as ma
from flask import Flask, request

from backend.api import (
    appointments,
    audit,
    clients,
    exports,
    headers,
    health,
    identity,
    media,
    observability,
    tenant,
)
from backend.api.errors import error_response
from backend.api.extension import Api, limiter
from backend.api.parsing import NUL_FREE_PATTERN, BoundedJSONProvider

API_BLUEPRINTS = (
    clients.blueprint,
    appointments.blueprint,
    media.blueprint,
    tenant.blueprint,
    exports.blueprint,
    exports.client_data_blueprint,
    identity.blueprint,
    identity.jwks_blueprint,
    identity.account_blueprint,
    identity.mfa_blueprint,
    audit.blueprint,
)
JSON_BODY_TYPES = ("application/json", "multipart/form-data")


def nul_free_strings(self, field, ret, **kwargs) -> dict:
    """Request strings refuse NUL characters (backend/api/parsing.py); the document says so
    with a pattern, so generators and fuzzers produce what the API accepts."""
    if isinstance(field, ma.fields.String) and not field.dump_only and "pattern" not in ret:
        return {"pattern": NUL_FREE_PATTERN}
    return {}


def refuse_unexpected_body_type():
    """A body that is neither JSON nor multipart is refused before any parsing (400)."""
    if request.method in ("POST", "PUT", "PATCH") and request.content_length:
        if request.mimetype not in JSON_BODY_TYPES and not request.mimetype.endswith("+json"):
            return error_response(400, "bad_request", "expected application/json")
    return None


def init_api(app: Flask) -> Api:
    app.json = BoundedJSONProvider(app)
    app.config.update(
        API_TITLE="Workspace API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
    )
    headers.init_app(app)  # before Api(app): it names where the docs page loads Swagger UI from
    settings = app.extensions["saas"].settings
    app.config.update(
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage,
        # Short timeouts: an unreachable store must cost a request milliseconds, not seconds.
        RATELIMIT_STORAGE_OPTIONS={"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
        if settings.ratelimit_storage.startswith(("redis", "valkey"))
        else {},
        # No X-RateLimit-* headers, and no Retry-After on answers that are not refusals
        # (flask-limiter's header injection puts one on every answer of a limited route, a 200
        # or a 401 included): a 429 says when to retry (extension.rate_limited).
        RATELIMIT_HEADERS_ENABLED=False,
        # Store down: the same limits count in this worker's memory (logged; the store is
        # re-checked and used again once it answers), so login stays up and is still limited
        # per worker. Anything else failing inside the limiter is skipped, logged, never a 500.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
    )
    limiter.init_app(app)
    api = Api(app)
    api.ma_plugin.converter.add_attribute_function(nul_free_strings)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    observability.init_app(app)
    app.before_request(refuse_unexpected_body_type)
    app.register_blueprint(health.blueprint)
    for blueprint in API_BLUEPRINTS:
        api.register_blueprint(blueprint)
    return api
