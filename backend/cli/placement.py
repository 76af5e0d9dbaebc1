"""Placement commands on a Citus cluster: `tenants move` and `tenants rebalance`
(docs/scale-out.md, docs/runbooks/citus-cluster.md). `tenants placement` lists where each
tenant is (backend/cli/tenants.py)."""

from __future__ import annotations

import time

import click
from flask.cli import with_appcontext

from backend.cli.owner import owner_engine
from backend.cli.tenants import owner_uow, tenants_cli
from backend.infrastructure.sql.placement import (
    REBALANCE_STRATEGIES,
    TRANSFER_MODES,
    CitusPlacement,
    is_citus,
)
from backend.service import placement as service

_MODE_HELP = (
    "How Citus copies the schema: auto/force_logical stream it while the tenant serves (writes "
    "wait only for the final switch), block_writes blocks its writes for the whole copy"
)


def _placement() -> CitusPlacement:
    engine = owner_engine()
    with engine.connect() as connection:
        if not is_citus(connection):
            raise click.ClickException("not a Citus coordinator: every tenant is on this one server")
    return CitusPlacement(engine)


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
    click.echo(f"moved {slug} ({done.tenant.schema_name}) from {done.source} to {target} "
               f"in {time.perf_counter() - started:.1f} s ({mode})")  # fmt: skip


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
    moves = service.rebalance_tenants(
        strategy=strategy, mode=mode, uow_factory=owner_uow, placement=_placement()
    )
    if not moves:
        click.echo("the tenants are balanced: nothing moved")
        return
    for tenant, step in moves:
        click.echo(f"moved {tenant.slug} ({step.schema_name}) from {step.source} to {step.target}")
    click.echo(f"{len(moves)} tenant(s) moved in {time.perf_counter() - started:.1f} s ({strategy}, {mode})")
