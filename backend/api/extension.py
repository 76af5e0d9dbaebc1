"""flask-smorest, subclassed once: every error speaks `{"detail": code}`, the bearer scheme
and the error responses are documented, and protected routes declare their roles and how
they behave in read-only mode and during a scheduled deletion."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import flask_smorest
import marshmallow as ma
from flask import g, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from flask_smorest.pagination import PaginationMetadataSchema, PaginationParameters
from sqlalchemy.exc import SQLAlchemyError

from backend.api import errors, pagination
from backend.api.auth import authenticate, request_id
from backend.api.context import registry_uow, runtime
from backend.api.parsing import ArgumentsParser
from backend.domain.access import AccessDecision, AccessMode, mfa_enrolment_due, resolve_access, route_refusal
from backend.domain.errors import DomainError, Forbidden, Unavailable
from backend.domain.identity import Principal, Role
from backend.service import audit as audit_service

log = logging.getLogger(__name__)
pagination.install()
MAX_PAGE_SIZE = 100
BODY_LOCATIONS = frozenset({"json", "form", "multipart"})
RETRY_AFTER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}

# Abuse limits on the public identity routes (api/identity/limits.py); storage and limits
# come from the settings (init_api). Behind a proxy, the app must see the client's address
# (werkzeug ProxyFix), or every client shares one per-IP budget.
# Development and tests only (production refuses to start without RATELIMIT_KEY_SECRET): one
# fixed key, so every worker and process sharing a store derives the same keys.
_DEVELOPMENT_KEY_SECRET = b"development-only-ratelimit-key"


def limiter_key(kind: str, value: str) -> str:
    """A limiter key for `value` (an email, a token, an address): HMAC-SHA256 under
    RATELIMIT_KEY_SECRET, so a key read from the storage or a log line cannot be linked to an
    address by hashing guesses. In development without the setting, a fixed development key."""
    configured = runtime().settings.ratelimit_key_secret
    secret = configured.encode() if configured else _DEVELOPMENT_KEY_SECRET
    # surrogatepass: a lone surrogate (valid JSON, no character) must not make the key raise;
    # the route's parser then refuses the body with a 422.
    message = f"{kind}:{value}".encode("utf-8", "surrogatepass")
    digest = hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]
    return f"{kind}:{digest}"


def client_address_key() -> str:
    """The per-IP limiter key: the address itself only when LOG_CLIENT_IPS opts in (the
    limiter logs its key when a limit is hit), its keyed HMAC otherwise."""
    address = get_remote_address()
    if runtime().settings.log_client_ips:
        return f"ip:{address}"
    return limiter_key("ip", address)


limiter = Limiter(key_func=client_address_key, headers_enabled=False)


def rate_limited(error: RateLimitExceeded):
    """429 `rate_limited` with Retry-After: the seconds until the window of the limit that was
    hit resets (flask-limiter's `current_limit`, public), at least 1."""
    breached = limiter.current_limit
    if breached is not None:
        error.retry_after = max(1, int(breached.reset_at - time.time()))
    return errors.from_http_exception(error)


class PaginationMetadata(PaginationMetadataSchema):
    """flask-smorest's X-Pagination object, documented with what is always there: `total` and
    `total_pages`; the page links only when there are pages."""

    total = ma.fields.Integer(required=True, metadata={"description": "Items across all pages"})
    total_pages = ma.fields.Integer(required=True)


class Api(flask_smorest.Api):
    """Our error handlers are registered after flask-smorest's, by `init_app` (public), so
    that ours win for the exceptions both handle."""

    ERROR_SCHEMA = errors.ErrorSchema

    def init_app(self, app, *, spec_kwargs=None):
        super().init_app(app, spec_kwargs=spec_kwargs)
        errors.register(app)
        app.register_error_handler(RateLimitExceeded, rate_limited)

    def handle_http_exception(self, error):
        return errors.from_http_exception(error)

    def _register_pagination_header(self):
        # X-Pagination carries a JSON object. OpenAPI describes a JSON-serialised header with
        # `content`; flask-smorest's `schema` would mean the "simple" style (`k,v,k,v`), which
        # is not what is sent (found by the API fuzzer, tests/integration/proof).
        self.spec.components.header(
            "PAGINATION",
            {
                "description": "Pagination metadata (a JSON object)",
                "content": {"application/json": {"schema": PaginationMetadata}},
            },
            lazy=True,
        )


def current_decision() -> AccessDecision:
    """The access policy's answer for the authenticated caller, now."""
    access = g.access
    return resolve_access(
        role=access.role,
        worker_verified=access.user_verified,
        tenant_status=access.tenant_status,
        trial_ends_at=access.trial_ends_at,
        plan=access.plan,
        now=datetime.now(UTC),
        migration_failed=access.migration_failed,
        mfa_enrolment_due=mfa_enrolment_due(
            access.role, mfa_required=access.mfa_required, mfa_enabled=access.mfa_enabled
        ),
    )


def _deny(principal: Principal, error: DomainError) -> None:
    """Record the refusal in the tenant's audit trail, then refuse."""
    if not isinstance(error, Unavailable):
        try:
            audit_service.record_access_denied(
                tenant_id=principal.tenant_id,
                user_id=principal.user_id,
                role=principal.role.value,
                code=error.code,
                route=request.url_rule.rule if request.url_rule else request.path,
                method=request.method,
                request_id=request_id(),
                uow=registry_uow(),
            )
        except SQLAlchemyError:
            # The refusal stands even when the trail cannot be written.
            log.exception("could not record access.denied")
    raise error


# One instance: flask-smorest would build a schema (deep-copying its fields) for every answer.
PAGINATION_METADATA = PaginationMetadataSchema()


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = ArgumentsParser()
    PAGINATION_ARGUMENTS_PARSER = ArgumentsParser()

    @staticmethod
    def _make_pagination_metadata(page: int, page_size: int, item_count: int) -> dict:
        """flask-smorest's metadata (its documented override point), dumped by one shared
        schema instead of a new one per answer."""
        metadata: dict[str, int] = {"total": item_count}
        if item_count == 0:
            metadata["total_pages"] = 0
            return PAGINATION_METADATA.dump(metadata)
        last_page = (item_count - 1) // page_size + 1
        metadata.update(total_pages=last_page, first_page=1, last_page=last_page)
        if page <= last_page:
            metadata["page"] = page
            if page > 1:
                metadata["previous_page"] = page - 1
            if page < last_page:
                metadata["next_page"] = page + 1
        return PAGINATION_METADATA.dump(metadata)

    def alt_response(self, status_code, response=None, **kwargs) -> Callable:
        """An error response is documented with the error body unless told otherwise, so
        the document says what every error looks like."""
        if int(status_code) >= 400 and response is None and kwargs.get("schema") is None:
            kwargs["schema"] = errors.ErrorSchema
        return super().alt_response(status_code, response, **kwargs)

    def arguments(self, schema, *, location: str = "json", **kwargs) -> Callable:
        """A route that reads a body also answers 400 `bad_request` (malformed JSON, wrong
        content type), before its schema sees anything. A schema class is instantiated once
        here: webargs would build (and deep-copy the fields of) a new one per request."""
        if isinstance(schema, type):
            schema = schema()
        parse = super().arguments(schema, location=location, **kwargs)
        if location not in BODY_LOCATIONS:
            return parse
        bad_request = self.alt_response(400, description="`bad_request`: malformed body or content type")
        return lambda view: bad_request(parse(view))

    def protected(
        self,
        *roles: Role,
        read_only_ok: bool = False,
        deletion_ok: bool = False,
        mfa_enrolment_ok: bool = False,
    ) -> Callable:
        """Authenticate the bearer token, resolve the tenant, check the caller's role, then
        apply the access policy (backend/domain/access.py).

        A route that mutates (POST/PUT/PATCH/DELETE) is refused in read-only mode unless
        `read_only_ok` (export, logout, the deletion request). A tenant scheduled for deletion
        is blocked except on routes marked `deletion_ok` (export, cancelling the deletion). A
        worker who must enrol a second factor (the workspace requires one) is held to routes
        marked `mfa_enrolment_ok` (enrolment, `GET /me`, their password and sessions, logout).
        Roles and these marks appear in the OpenAPI document (`x-roles`, `x-access`)."""
        if not roles:
            raise ValueError("a protected route names the roles allowed to call it")
        access = {
            "read_only_ok": read_only_ok,
            "deletion_ok": deletion_ok,
            "mfa_enrolment_ok": mfa_enrolment_ok,
        }

        def decorator(view: Callable) -> Callable:
            @functools.wraps(view)
            def guarded(*args, **kwargs):
                principal = authenticate()
                if principal.role not in roles:
                    _deny(principal, Forbidden("forbidden"))
                decision = current_decision()
                g.access_decision = decision
                refusal = route_refusal(
                    decision,
                    method=request.method,
                    read_only_ok=read_only_ok,
                    deletion_ok=deletion_ok,
                    mfa_enrolment_ok=mfa_enrolment_ok,
                )
                if refusal is not None:
                    if refusal.mode is AccessMode.UNAVAILABLE:
                        _deny(principal, Unavailable(refusal.code))
                    _deny(principal, Forbidden(refusal.code))
                return view(*args, **kwargs)

            guarded.access_marks = access
            guarded = self.doc(
                security=[{"bearerAuth": []}],
                **{"x-roles": [r.value for r in roles], "x-access": access},
            )(guarded)
            guarded = self.alt_response(401, description="Missing, invalid or expired token")(guarded)
            guarded = self.alt_response(
                503,
                description="`tenant_unavailable` (being provisioned, or its last migration failed) "
                "or `database_unavailable`: retry after Retry-After",
                headers={"Retry-After": RETRY_AFTER},
            )(guarded)
            return self.alt_response(403, description="Role or access mode forbids it")(guarded)

        return decorator

    def paginated(self) -> Callable:
        return self.paginate(max_page_size=MAX_PAGE_SIZE)


__all__ = ["Api", "Blueprint", "PaginationParameters", "current_decision", "limiter"]
