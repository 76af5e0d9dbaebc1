"""flask-smorest, subclassed once: every error speaks `{"detail": code}`, the bearer scheme
and the error responses are documented, and protected routes declare their roles."""

from __future__ import annotations

import functools
from collections.abc import Callable

import flask_smorest
from flask_smorest.pagination import PaginationParameters

from backend.api import errors
from backend.api.auth import authenticate
from backend.domain.errors import Forbidden
from backend.domain.identity import Role

MAX_PAGE_SIZE = 100


class Api(flask_smorest.Api):
    ERROR_SCHEMA = errors.ErrorSchema

    def handle_http_exception(self, error):
        return errors.from_http_exception(error)

    def _register_error_handlers(self):
        super()._register_error_handlers()
        errors.register(self._app)


class Blueprint(flask_smorest.Blueprint):
    def protected(
        self, *roles: Role, read_only_ok: bool = False, deletion_ok: bool = False
    ) -> Callable:
        """Authenticate the bearer token, resolve the tenant and check the caller's role.

        A route that mutates (POST/PUT/PATCH/DELETE) is refused in read-only mode unless
        `read_only_ok` (export, logout, the deletion request). A tenant scheduled for deletion
        is blocked except on routes marked `deletion_ok` (export, cancelling the deletion).
        Roles and these marks appear in the OpenAPI document (`x-roles`, `x-access`)."""
        access = {"read_only_ok": read_only_ok, "deletion_ok": deletion_ok}

        def decorator(view: Callable) -> Callable:
            @functools.wraps(view)
            def guarded(*args, **kwargs):
                principal = authenticate()
                if principal.role not in roles:
                    raise Forbidden("forbidden")
                return view(*args, **kwargs)

            guarded.access_marks = access
            guarded = self.doc(
                security=[{"bearerAuth": []}],
                **{"x-roles": [r.value for r in roles], "x-access": access},
            )(guarded)
            guarded = self.alt_response(401, description="Missing, invalid or expired token")(guarded)
            return self.alt_response(403, description="Role or access mode forbids it")(guarded)

        return decorator

    def paginated(self) -> Callable:
        return self.paginate(max_page_size=MAX_PAGE_SIZE)


__all__ = ["Api", "Blueprint", "PaginationParameters"]
