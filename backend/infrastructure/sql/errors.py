"""Turn database errors into domain errors, once, at the unit-of-work boundary."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from backend.domain.errors import Conflict

# Constraint name -> stable 409 code of the API contract.
CONFLICT_CODES = {
    "uq_tenants_slug": "slug_taken",
    "uq_users_email_lower": "email_taken",
    "uq_clients_email_lower": "client_email_taken",
    # An ExclusionViolation is an IntegrityError too: two non-cancelled appointments overlap.
    "ex_appointments_no_overlap": "appointment_overlap",
    "uq_memberships_user_id_tenant_id": "already_member",
}


def constraint_name(error: IntegrityError) -> str | None:
    diag = getattr(error.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


def as_domain_error(error: IntegrityError) -> Exception:
    """The domain Conflict a known constraint stands for, or the error itself."""
    code = CONFLICT_CODES.get(constraint_name(error) or "")
    if code is None:
        return error
    return Conflict(code)
