"""Placement commands on a Citus cluster: `tenants distribute` (a single server that became
the coordinator), `tenants move` and `tenants rebalance` (docs/scale-out.md,
docs/runbooks/citus-cluster.md). `tenants placement` lists where each tenant is
(backend/cli/tenants.py)."""

from __future__ import annotations

import time
from collections import Counter

import click
from flask.cli import with_appcontext

from backend.cli.owner import owner_access
from backend.cli.tenants import lock_timeout_option, owner_uow, tenants_cli
from backend.domain.placement import Distribution, DistributionOutcome
from backend.infrastructure.sql.placement import (
    BLOCK_WRITES,
    REBALANCE_STRATEGIES,
    TRANSFER_MODES,
    CitusPlacement,
    is_citus,
    worker_nodes,
)
from backend.infrastructure.sql.privileges import grant_shared
from backend.service import placement as service

_MODE_HELP = (
    "How Citus copies the schema: auto/force_logical stream it while the tenant serves (writes "
    "wait only for the final switch), block_writes blocks its writes for the whole copy"
)


def _placement() -> CitusPlacement:
    owner = owner_access()
    with owner.engine.connect() as connection:
        if not is_citus(connection):
            raise click.ClickException("not a Citus coordinator: every tenant is on this one server")
    return CitusPlacement(owner.engine, owner.runtime_role)


@tenants_cli.command("distribute")
@lock_timeout_option(
    "Milliseconds a schema may wait for its table locks before it fails (retried by the next run)"
)
@with_appcontext
def distribute(lock_timeout_ms: int) -> None:
    """After adding Citus to this server: make every existing tenant schema and spare schema a
    distributed schema on a worker, each tenant role able to log in; `shared` stays on the
    coordinator. Idempotent and resumable; one schema's failure does not stop the others."""
    owner = owner_access()
    placement = _placement()
    if not owner.settings.citus:
        raise click.ClickException("CITUS is not set: new schemas would not be distributed (set CITUS=1)")
    with owner.engine.begin() as connection:
        if not worker_nodes(connection):
            raise click.ClickException("the cluster has no worker yet: add them first (citus_add_node)")
        # The tenant group may connect to the database (the workers admit tenant roles from the
        # coordinator), and a tenant schema without a role gets one (LOGIN on Citus).
        grant_shared(connection, owner.runtime_role)
    schemas = placement.tenant_schemas()
    click.echo(f"{sum(not s.ready for s in schemas)} of {len(schemas)} tenant schema(s) to distribute")
    started = time.perf_counter()
    results: list[Distribution] = []
    with click.progressbar(length=len(schemas), label="schemas", show_pos=True, show_eta=True) as bar:
        for result in service.distribute_schemas(
            schemas=schemas, placement=placement, uow_factory=owner_uow, lock_timeout_ms=lock_timeout_ms
        ):
            results.append(result)
            bar.update(1)
    _print_distributions(results)
    counts = Counter(r.outcome for r in results)
    per_node = Counter(r.node for r in results if r.node)
    nodes = ", ".join(f"{node}: {count}" for node, count in sorted(per_node.items())) or "-"
    click.echo(
        f"{counts[DistributionOutcome.DISTRIBUTED]} distributed, {counts[DistributionOutcome.CURRENT]} "
        f"already distributed, {counts[DistributionOutcome.BUSY]} busy (another run), "
        f"{counts[DistributionOutcome.FAILED]} failed in {time.perf_counter() - started:.1f} s; "
        f"schemas per worker: {nodes}"
    )
    if counts[DistributionOutcome.FAILED] or counts[DistributionOutcome.BUSY]:
        raise click.ClickException(
            f"{counts[DistributionOutcome.FAILED] + counts[DistributionOutcome.BUSY]} schema(s) not "
            "distributed; fix the cause and run again"
        )


def _print_distributions(results: list[Distribution]) -> None:
    """One line per schema the run touched (schemas already done are only counted)."""
    touched = [r for r in results if r.outcome is not DistributionOutcome.CURRENT]
    if not touched:
        return
    click.echo(f"{'slug':<40} {'schema':<40} {'outcome':<12} {'node':<22} {'seconds':>7}  error")
    for r in touched:
        click.echo(
            f"{r.schema.slug or '(spare)':<40} {r.schema.schema_name:<40} {r.outcome.value:<12} "
            f"{r.node or '-':<22} {r.seconds:>7.2f}  {r.error or ''}"
        )


@tenants_cli.command("move")
@click.option("--slug", required=True)
@click.option("--to", "target", required=True, metavar="HOST:PORT", help="A worker of the cluster")
@click.option("--mode", type=click.Choice(TRANSFER_MODES), default="auto", show_default=True, help=_MODE_HELP)
@with_appcontext
def move(slug: str, target: str, mode: str) -> None:
    """Move one tenant's schema to another worker while it keeps serving; audited."""
    started = time.perf_counter()
    done = service.move_tenant(
        slug=slug, target=target, mode=mode, uow_factory=owner_uow, placement=_placement()
    )
    if not done.moved:
        click.echo(f"{slug} is already on {target}: nothing moved")
        return
    click.echo(
        f"moved {slug} ({done.tenant.schema_name}) from {done.source} to {target} "
        f"in {time.perf_counter() - started:.1f} s ({_transfer_line(mode, done.transfer)})"
    )


@tenants_cli.command("rebalance")
@click.option(
    "--strategy",
    type=click.Choice(REBALANCE_STRATEGIES),
    default="by_shard_count",
    show_default=True,
    help="by_shard_count evens the tenants per worker; by_disk_size evens their bytes",
)
@click.option("--mode", type=click.Choice(TRANSFER_MODES), default="auto", show_default=True, help=_MODE_HELP)
@with_appcontext
def rebalance(strategy: str, mode: str) -> None:
    """Even the tenants over the workers with Citus's rebalancer (after adding a node); waits
    for it to finish, each tenant serving while it moves; audited per tenant."""
    started = time.perf_counter()
    done = service.rebalance_tenants(
        strategy=strategy, mode=mode, uow_factory=owner_uow, placement=_placement()
    )
    if not done.moves:
        click.echo("the tenants are balanced: nothing moved")
        return
    for tenant, step in done.moves:
        click.echo(f"moved {tenant.slug} ({step.schema_name}) from {step.source} to {step.target}")
    click.echo(
        f"{len(done.moves)} tenant(s) moved in {time.perf_counter() - started:.1f} s "
        f"({strategy}, {_transfer_line(mode, done.transfer)})"
    )


def _transfer_line(mode: str, transfer: str | None) -> str:
    """What Citus ran, after the mode asked when it differs: behind poolers that refuse
    replication `auto` runs as block_writes, the tenant's writes waited for the whole copy."""
    why = (
        "writes waited for the whole copy"
        if transfer == BLOCK_WRITES
        else "writes waited only for the switch"
    )
    return f"{transfer}: {why}" if mode == transfer else f"{mode} ran as {transfer}: {why}"
