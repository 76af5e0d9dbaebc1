"""`tenants spares`: the pool of spare tenant schemas signups claim (docs/architecture.md).

`tenants migrate` refills it at the end of a deploy (`refill_after_migrate`); the worker keeps
it topped up (`refill_spare_pool`: a periodic task, and a job a signup asks for when it took
the pool under SPARE_SCHEMAS or found it empty; backend/cli/worker.py); this command shows it,
refills it, or clears spares of other heads. The API never builds nor drops a spare.
It is attached to the `tenants` group by backend/cli/__init__.py: cli/tenants.py imports this
module (`refill_after_migrate`), so this one does not import it back.
"""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from backend.cli.owner import owner_access
from backend.infrastructure.spares import PoolStatus, RefillResult, SparePool
from backend.infrastructure.sql.audit import SqlAuditLog
from backend.service.tenants import describe

TO_SETTING = -1  # `--fill` given without a number: SPARE_SCHEMAS
SPARES_REFILLED = "spares.refilled"  # audit: a refill that built or dropped spares


def spare_pool(app: Flask | None = None) -> SparePool:
    app = app or current_app
    owner = owner_access(app)
    return SparePool(owner.engine, owner.runtime_role, app.extensions["saas"].settings.spare_schemas)


def refill_spare_pool(app: Flask, *, reason: str, at_least: int = 0) -> RefillResult:
    """The worker's refill: drop spares of an older head, build up to SPARE_SCHEMAS (at least
    `at_least`: a signup that found none asks for one even when the setting is 0), waiting
    behind a refill in progress. Idempotent: a pool already full costs one count. A refill
    that built or dropped anything is audited (`spares.refilled`, `reason`: periodic |
    signup). Each spare is its own transaction: a worker killed halfway leaves complete
    spares, and the next run carries on."""
    pool = spare_pool(app)
    result = pool.refill(target=max(pool.size, at_least))
    if result.built or result.dropped:
        with pool.engine.begin() as connection:
            SqlAuditLog(connection).record(
                SPARES_REFILLED,
                target_type="spare_schemas",
                metadata={"count": result.built, "dropped": result.dropped, "reason": reason},
            )
    return result


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
    the worker's periodic refill, or `tenants spares --fill`, refills."""
    try:
        refill(spare_pool(), target=None, drop_stale=False)
    except Exception as error:  # noqa: BLE001 - reported; the migration itself succeeded
        click.echo(f"warning: spare schemas not refilled: {describe(error)}", err=True)
