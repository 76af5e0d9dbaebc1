"""The tenant (workspace): its entity, its lifecycle states and its slug rules."""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from backend.domain.errors import Conflict, Invalid

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,38})[a-z0-9]$")
RESERVED_SLUGS = frozenset(
    {
        "admin", "api", "app", "auth", "billing", "docs", "help", "internal", "login",
        "logout", "mail", "metrics", "public", "root", "shared", "signup", "static",
        "status", "support", "system", "tenant", "tenants", "www",
    }
)  # fmt: skip


class TenantStatus(enum.StrEnum):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    DISABLED = "disabled"
    DELETION_SCHEDULED = "deletion_scheduled"
    DELETED = "deleted"


class Plan(enum.StrEnum):
    TRIAL = "trial"
    PAID = "paid"


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    slug: str
    name: str
    schema_name: str
    status: TenantStatus
    plan: Plan
    trial_ends_at: datetime | None
    created_at: datetime
    schema_version: str | None = None
    disabled_at: datetime | None = None
    deletion_due_at: datetime | None = None
    deleted_at: datetime | None = None
    last_migration_error: str | None = None


class UpgradeMethod(enum.StrEnum):
    """How a tenant schema was upgraded: by the step's SQL script, rendered once per process
    (one round trip), or by running the migration chain against the schema."""

    SCRIPT = "script"
    CHAIN = "chain"


@dataclass(frozen=True)
class SchemaUpgrade:
    version: str
    method: UpgradeMethod


@dataclass(frozen=True)
class SchemaDowngrade:
    from_version: str | None
    version: str | None


@dataclass(frozen=True)
class SpareSchema:
    """A complete tenant schema at `revision`, built ahead of time under a fresh id: the
    tenant that claims it takes that id, so its schema name (`schema_name_for(id)`) fits."""

    id: uuid.UUID
    revision: str


def schema_name_for(tenant_id: uuid.UUID) -> str:
    """Schema names derive from the opaque tenant id, never from the slug (user input)."""
    return f"tenant_{tenant_id.hex}"


def validate_slug(slug: str) -> str:
    """Return the slug if it follows the rules: lowercase, 3-40 chars of [a-z0-9-], not reserved."""
    problems = []
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug) or "--" in slug:
        problems.append(
            "3 to 40 characters of lowercase letters, digits and single hyphens, "
            "starting and ending with a letter or digit"
        )
    elif slug in RESERVED_SLUGS or slug.startswith("pg-"):
        problems.append("this name is reserved")
    if problems:
        raise Invalid({"slug": problems})
    return slug


def validate_workspace_name(name: str) -> str:
    cleaned = (name or "").strip()
    if not 1 <= len(cleaned) <= 120:
        raise Invalid({"name": ["1 to 120 characters"]})
    return cleaned


class DisableReason(enum.StrEnum):
    """Why an operator disabled a tenant: a closed list, so the audit trail holds no free text."""

    ABUSE = "abuse"
    NON_PAYMENT = "non_payment"
    OWNER_REQUEST = "owner_request"
    SECURITY = "security"
    OTHER = "other"


def check_operator_status_change(current: TenantStatus, target: TenantStatus) -> bool:
    """Whether an operator's disable/enable changes anything: False when the tenant is already
    in `target` (the command is idempotent). Raises Conflict when the lifecycle forbids it: a
    tenant scheduled for deletion or deleted is neither disabled nor re-enabled here (cancel
    the deletion, or restore, instead)."""
    if target not in (TenantStatus.ACTIVE, TenantStatus.DISABLED):
        raise ValueError(f"not an operator status: {target}")
    if current is target:
        return False
    if current in (TenantStatus.DELETION_SCHEDULED, TenantStatus.DELETED):
        raise Conflict("tenant_deleted", f"the tenant is {current.value}")
    if current is TenantStatus.PROVISIONING:
        raise Conflict("tenant_provisioning", "the tenant is still being provisioned")
    return True
