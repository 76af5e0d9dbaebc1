"""Placement of tenant schemas on the nodes of a Citus cluster (docs/scale-out.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

MOVED = "tenant.moved"  # metadata: slug, from_node, node, reason (operator | rebalance)


@dataclass(frozen=True)
class SchemaMove:
    """One tenant schema going from one worker (HOST:PORT) to another."""

    schema_name: str
    source: str
    target: str


# A tenant schema of a single server turned into a distributed schema (`tenants distribute`):
# metadata: slug (None for a spare schema), schema_name, node, role_login (its role was made LOGIN).
DISTRIBUTED = "tenant.distributed"


@dataclass(frozen=True)
class TenantSchema:
    """A tenant-shaped schema (`tenant_<hex>`) on a coordinator, as `tenants distribute` sees it."""

    schema_name: str
    tenant_id: uuid.UUID | None  # None: a spare schema (or an orphan) no tenant holds yet
    slug: str | None
    distributed: bool  # already a Citus distributed schema
    role_can_login: bool  # its tenant role may log in (the coordinator connects to workers as it)

    @property
    def ready(self) -> bool:
        return self.distributed and self.role_can_login


class DistributionOutcome(StrEnum):
    DISTRIBUTED = "distributed"  # changed by this run
    CURRENT = "current"  # already distributed, its role already LOGIN
    BUSY = "busy"  # another run (migration, distribution) holds the tenant: the next run does it
    FAILED = "failed"


@dataclass(frozen=True)
class Distribution:
    schema: TenantSchema
    outcome: DistributionOutcome
    node: str | None  # HOST:PORT of the worker holding it afterwards
    seconds: float
    error: str | None = None
