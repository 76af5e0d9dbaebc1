"""Turn database errors into domain errors, once, at the unit-of-work boundary."""

from __future__ import annotations

import re

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


# On Citus a violation on a worker names the shard's constraint: the name plus `_<shardid>`
# (`ex_appointments_no_overlap_102009`). Only a known name with that suffix is mapped.
_SHARD_SUFFIX = re.compile(r"_[0-9]+$")


def conflict_code(name: str | None) -> str | None:
    """The 409 code of a constraint, by its own name or its Citus shard's name."""
    if not name:
        return None
    return CONFLICT_CODES.get(name) or CONFLICT_CODES.get(_SHARD_SUFFIX.sub("", name))


# A violation raised on a Citus worker reaches the client without the constraint-name field
# (only the message carries it), so the name is read from PostgreSQL's own message then.
_MESSAGE_CONSTRAINT = re.compile(r'violates (?:unique|exclusion) constraint "([^"]+)"')


def constraint_name(error: IntegrityError) -> str | None:
    diag = getattr(error.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if name is None and (match := _MESSAGE_CONSTRAINT.search(getattr(diag, "message_primary", None) or "")):
        name = match.group(1)
    return name


def as_domain_error(error: IntegrityError) -> Exception:
    """The domain Conflict a known constraint stands for, or the error itself."""
    code = conflict_code(constraint_name(error))
    if code is None:
        return error
    return Conflict(code)
