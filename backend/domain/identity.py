"""Who is calling: roles and the authenticated principal."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass


class Role(enum.StrEnum):
    WORKER = "worker"
    CLIENT = "client"


@dataclass(frozen=True)
class Principal:
    """The caller of a tenant-scoped request, as established from a verified token and
    checked against the registry (membership still present, tenant still reachable)."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: Role
    client_id: uuid.UUID | None = None  # set for clients: the client record they are


@dataclass(frozen=True)
class AccessRecord:
    """What the registry says about a (user, tenant) pair, read on every request."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_schema: str
    tenant_slug: str
    tenant_status: str
    role: Role
    client_id: uuid.UUID | None
