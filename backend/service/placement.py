"""Moving tenants between the workers of a Citus cluster, online: one tenant to a node the
operator names, or the whole fleet by Citus's rebalancer. Each tenant moved is audited."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from backend.domain.errors import NotFound
from backend.domain.placement import MOVED, SchemaMove
from backend.domain.tenants import Tenant, TenantStatus
from backend.service.ports import RegistryUnitOfWork, TenantPlacement


@dataclass(frozen=True)
class TenantMove:
    tenant: Tenant
    source: str
    target: str
    moved: bool  # False: it was already on the target


def move_tenant(
    *,
    slug: str,
    target: str,
    mode: str,
    uow_factory: Callable[[], RegistryUnitOfWork],
    placement: TenantPlacement,
) -> TenantMove:
    """Moves the tenant's schema to the worker `target` (HOST:PORT) while it keeps serving,
    and audits it; a tenant already there is left alone."""
    with uow_factory() as uow:
        tenant = uow.tenants.get_by_slug(slug)
    if tenant is None or tenant.status is TenantStatus.DELETED:
        raise NotFound("not_found", f"no tenant {slug!r}")
    source = placement.node_of(tenant.schema_name)
    if source == target:
        return TenantMove(tenant, source, target, moved=False)
    placement.move(tenant.schema_name, target, mode)
    _audit_moves(uow_factory, [(tenant, SchemaMove(tenant.schema_name, source or "-", target))], "operator")
    return TenantMove(tenant, source or "-", target, moved=True)


def rebalance_tenants(
    *,
    strategy: str,
    mode: str,
    uow_factory: Callable[[], RegistryUnitOfWork],
    placement: TenantPlacement,
) -> list[tuple[Tenant, SchemaMove]]:
    """Runs Citus's rebalancer to its end and audits each tenant it moved (the plan it
    followed); returns those moves, empty when the fleet was already balanced."""
    planned = placement.rebalance_plan(strategy)
    if not planned:
        return []
    placement.rebalance(strategy, mode)
    with uow_factory() as uow:
        by_schema = {tenant.schema_name: tenant for tenant in uow.tenants.list()}
    moves = [(by_schema[move.schema_name], move) for move in planned if move.schema_name in by_schema]
    _audit_moves(uow_factory, moves, "rebalance")
    return moves


def _audit_moves(
    uow_factory: Callable[[], RegistryUnitOfWork], moves: list[tuple[Tenant, SchemaMove]], reason: str
) -> None:
    with uow_factory() as uow:
        for tenant, move in moves:
            uow.audit.record(
                MOVED,
                tenant_id=tenant.id,
                actor_role="operator",
                target_type="tenant",
                target_id=str(tenant.id),
                metadata={
                    "slug": tenant.slug,
                    "from_node": move.source,
                    "node": move.target,
                    "reason": reason,
                },
            )
        uow.commit()
