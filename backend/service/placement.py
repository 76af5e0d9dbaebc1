"""Moving tenants between the workers of a Citus cluster, online: one tenant to a node the
operator names, or the whole fleet by Citus's rebalancer. Each tenant moved is audited."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from backend.domain.errors import NotFound
from backend.domain.placement import (
    DISTRIBUTED,
    MOVED,
    Distribution,
    DistributionOutcome,
    SchemaMove,
    TenantSchema,
)
from backend.domain.tenants import Tenant, TenantStatus
from backend.service.ports import RegistryUnitOfWork, TenantPlacement
from backend.service.tenants import describe


@dataclass(frozen=True)
class TenantMove:
    tenant: Tenant
    source: str
    target: str
    moved: bool  # False: it was already on the target
    transfer: str | None = None  # how Citus copied it: logical | block_writes (None: not moved)


@dataclass(frozen=True)
class Rebalance:
    moves: list[tuple[Tenant, SchemaMove]]  # empty: the fleet was balanced
    transfer: str | None = None  # how Citus copied them: logical | block_writes


def move_tenant(
    *,
    slug: str,
    target: str,
    mode: str,
    uow_factory: Callable[[], RegistryUnitOfWork],
    placement: TenantPlacement,
) -> TenantMove:
    """Moves the tenant's schema to the worker `target` (HOST:PORT) while it keeps serving,
    and audits it with the mode asked and how Citus copied it (`auto` runs as block_writes
    behind poolers that refuse replication); a tenant already there is left alone."""
    with uow_factory() as uow:
        tenant = uow.tenants.get_by_slug(slug)
    if tenant is None or tenant.status is TenantStatus.DELETED:
        raise NotFound("not_found", f"no tenant {slug!r}")
    source = placement.node_of(tenant.schema_name)
    if source == target:
        return TenantMove(tenant, source, target, moved=False)
    transfer = placement.move(tenant.schema_name, target, mode)
    step = SchemaMove(tenant.schema_name, source or "-", target)
    _audit_moves(uow_factory, [(tenant, step)], "operator", mode, transfer)
    return TenantMove(tenant, source or "-", target, moved=True, transfer=transfer)


def rebalance_tenants(
    *,
    strategy: str,
    mode: str,
    uow_factory: Callable[[], RegistryUnitOfWork],
    placement: TenantPlacement,
) -> Rebalance:
    """Runs Citus's rebalancer to its end and audits each tenant it moved (the plan it
    followed) with how Citus copied them; returns those moves, none when the fleet was
    already balanced."""
    planned = placement.rebalance_plan(strategy)
    if not planned:
        return Rebalance([])
    transfer = placement.rebalance(strategy, mode)
    with uow_factory() as uow:
        by_schema = {tenant.schema_name: tenant for tenant in uow.tenants.list()}
    moves = [(by_schema[move.schema_name], move) for move in planned if move.schema_name in by_schema]
    _audit_moves(uow_factory, moves, "rebalance", mode, transfer)
    return Rebalance(moves, transfer)


def distribute_schemas(
    *,
    schemas: list[TenantSchema],
    placement: TenantPlacement,
    uow_factory: Callable[[], RegistryUnitOfWork],
    lock_timeout_ms: int,
) -> Iterator[Distribution]:
    """Turns each existing tenant schema into a Citus distributed schema on a worker, its
    tenant role able to log in (docs/scale-out.md, "Upgrade path from one server"); yields one
    result per schema as it ends. Idempotent (a schema already done is `current`), resumable
    (a run stopped half-way leaves each schema done or untouched), and one schema's failure
    neither stops nor undoes the others. Each schema changed is audited."""
    for schema in schemas:
        started = time.perf_counter()
        if schema.ready:
            node = placement.node_of(schema.schema_name)
            yield Distribution(schema, DistributionOutcome.CURRENT, node, time.perf_counter() - started)
            continue
        try:
            done = placement.distribute(schema, lock_timeout_ms)
            node = placement.node_of(schema.schema_name) if done else None
        except Exception as error:  # noqa: BLE001 - one schema's failure must not stop the fleet
            yield Distribution(
                schema, DistributionOutcome.FAILED, None, time.perf_counter() - started, describe(error)
            )
            continue
        if not done:
            yield Distribution(schema, DistributionOutcome.BUSY, None, time.perf_counter() - started)
            continue
        _audit_distribution(uow_factory, schema, node)
        yield Distribution(schema, DistributionOutcome.DISTRIBUTED, node, time.perf_counter() - started)


def _audit_distribution(
    uow_factory: Callable[[], RegistryUnitOfWork], schema: TenantSchema, node: str | None
) -> None:
    with uow_factory() as uow:
        uow.audit.record(
            DISTRIBUTED,
            tenant_id=schema.tenant_id,
            actor_role="operator",
            target_type="tenant" if schema.tenant_id else "spare_schema",
            target_id=str(schema.tenant_id) if schema.tenant_id else schema.schema_name,
            metadata={
                "slug": schema.slug,
                "schema_name": schema.schema_name,
                "node": node,
                "role_login": not schema.role_can_login,
            },
        )
        uow.commit()


def _audit_moves(
    uow_factory: Callable[[], RegistryUnitOfWork],
    moves: list[tuple[Tenant, SchemaMove]],
    reason: str,
    mode: str,
    transfer: str,
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
                    "mode": mode,  # asked by the operator
                    "transfer": transfer,  # what Citus ran: logical | block_writes
                },
            )
        uow.commit()
