"""Where each tenant lives on a Citus cluster: the worker holding its distributed schema."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class Placement:
    slug: str
    schema_name: str
    node: str | None  # HOST:PORT of the worker; None: not a distributed schema (not on Citus)


# A distributed schema's tables are co-located: the placement of any one shard of the schema
# is the tenant's node. citus_schemas / pg_dist_* are Citus's public catalog views and tables.
_PLACEMENTS = text(
    "SELECT t.slug, t.schema_name, ("
    "  SELECT n.nodename || ':' || n.nodeport"
    "  FROM public.citus_schemas s"
    "  JOIN pg_dist_partition p ON p.colocationid = s.colocation_id"
    "  JOIN pg_dist_shard sh ON sh.logicalrelid = p.logicalrelid"
    "  JOIN pg_dist_placement pl ON pl.shardid = sh.shardid"
    "  JOIN pg_dist_node n ON n.groupid = pl.groupid"
    "  WHERE s.schema_name::text = t.schema_name LIMIT 1"
    ") AS node FROM shared.tenants t WHERE t.status <> 'deleted' ORDER BY t.slug"
)


def is_citus(connection: Connection) -> bool:
    return connection.execute(text("SELECT to_regclass('public.citus_schemas') IS NOT NULL")).scalar()


def tenant_placements(connection: Connection) -> list[Placement]:
    return [Placement(row.slug, row.schema_name, row.node) for row in connection.execute(_PLACEMENTS)]
