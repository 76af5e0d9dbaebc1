"""`tenants spares`: the pool of spare tenant schemas signups claim (docs/architecture.md).

`tenants migrate` refills it at the end of a deploy (`refill_after_migrate`); web processes
top it up after signups; this command shows it, refills it, or clears spares of other heads.
It is attached to the `tenants` group by backend/cli/__init__.py: cli/tenants.py imports this
module (`refill_after_migrate`), so this one does not import it back.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from backend.infrastructure.spares import PoolStatus, SparePool
from backend.service.tenants import describe

TO_SETTING = -1  # `--fill` given without a number: SPARE_SCHEMAS


def spare_pool() -> SparePool:
    rt = current_app.extensions["saas"]
    return SparePool(rt.owner_engine, rt.runtime_role, rt.settings.spare_schemas)


@click.command("spares")
@click.option(
    "--fill",
    type=int,
    is_flag=False,
    flag_value=TO_SETTING,
    default=None,
    metavar="[N]",
    help="Build (or drop) spares until N are ready at the tenant head (no N: SPARE_SCHEMAS); "
    "spares of an older head are dropped first",
)
@click.option(
    "--drop-stale",
    is_flag=True,
    help="Also drop spares at any revision but this code's head (a revision it does not know too)",
)
@with_appcontext
def spares(fill: int | None, drop_stale: bool) -> None:
    """Show the spare schemas; with --fill or --drop-stale, refill or clean them first."""
    if fill is not None and fill < 0 and fill != TO_SETTING:
        raise click.BadParameter("N must be 0 or more", param_hint="--fill")
    pool = spare_pool()
    if fill is None and not drop_stale:
        echo_status(pool.status(), pool.size)
        return
    if fill is None:  # only --drop-stale: keep the ready ones as they are
        fill = pool.status().at_head
    refill(pool, target=None if fill == TO_SETTING else fill, drop_stale=drop_stale)


def echo_status(status: PoolStatus, size: int) -> None:
    click.echo(
        f"spare schemas at {status.head}: {status.at_head} ready (SPARE_SCHEMAS={size}), "
        f"{status.older} of an older head, {status.other} of a revision this code does not know"
    )


def refill(pool: SparePool, *, target: int | None, drop_stale: bool) -> None:
    """Refill with a progress bar (one step per spare built or dropped) and a summary line."""
    before = pool.status()
    goal = pool.size if target is None else target
    steps = abs(goal - before.at_head) + before.older + (before.other if drop_stale else 0)
    with click.progressbar(length=steps, label="spare schemas", show_pos=True) as bar:
        result = pool.refill(target=goal, shrink=True, drop_stale=drop_stale, progress=lambda: bar.update(1))
    after = pool.status()
    click.echo(
        f"spare schemas at {after.head}: {after.at_head} ready (target {goal}); "
        f"{result.built} built, {result.dropped} dropped in {result.seconds:.1f} s"
    )


def refill_after_migrate() -> None:
    """After a deploy's migrations: drop the spares of the old head, refill to SPARE_SCHEMAS
    at the new one (shrink if it was lowered; 0 empties the pool). A failure fails no deploy:
    provisioning then creates schemas itself, and the next signup or `tenants spares --fill`
    refills."""
    try:
        refill(spare_pool(), target=None, drop_stale=False)
    except Exception as error:  # noqa: BLE001 - reported; the migration itself succeeded
        click.echo(f"warning: spare schemas not refilled: {describe(error)}", err=True)
