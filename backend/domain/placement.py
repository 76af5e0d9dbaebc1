"""Placement of tenant schemas on the nodes of a Citus cluster (docs/scale-out.md)."""

from __future__ import annotations

from dataclasses import dataclass

MOVED = "tenant.moved"  # metadata: slug, from_node, node, reason (operator | rebalance)


@dataclass(frozen=True)
class SchemaMove:
    """One tenant schema going from one worker (HOST:PORT) to another."""

    schema_name: str
    source: str
    target: str
