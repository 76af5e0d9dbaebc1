"""Domain exceptions. Each carries a stable code from the API contract; the api layer
maps the kind to an HTTP status once (backend/api/errors.py)."""

from __future__ import annotations


class DomainError(Exception):
    code = "bad_request"

    def __init__(self, code: str | None = None, message: str | None = None) -> None:
        self.code = code or self.code
        self.message = message
        super().__init__(message or self.code)


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """A domain conflict: `slug_taken`, `email_taken`, `appointment_overlap`, ..."""


class Invalid(DomainError):
    """Input that breaks a business rule; `errors` maps field names to messages."""

    code = "validation_error"

    def __init__(self, errors: dict[str, list[str]], message: str | None = None) -> None:
        super().__init__("validation_error", message)
        self.errors = errors


class TooLarge(DomainError):
    """A body or an uploaded file above its configured limit."""

    code = "payload_too_large"


class UnsupportedType(DomainError):
    """Content whose type (as sniffed from its bytes) is not allowed."""

    code = "unsupported_media_type"


class Unauthenticated(DomainError):
    code = "invalid_token"


class Forbidden(DomainError):
    """Access denied by role or access mode: `forbidden`, `read_only`, `tenant_disabled`, ..."""

    code = "forbidden"


class Unavailable(DomainError):
    """A dependency or the tenant is temporarily unavailable: retry later."""

    code = "tenant_unavailable"

    def __init__(self, code: str | None = None, message: str | None = None, retry_after_s: int = 5):
        super().__init__(code, message)
        self.retry_after_s = retry_after_s
