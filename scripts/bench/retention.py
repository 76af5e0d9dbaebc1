"""retention: the worker's periodic pass (retention, due purges, unverified signups) over N
tenants (1,000 by default) with nothing due, then with 1 and with 10 tenants due.

What the worker runs (backend/cli/tasks/scheduled.py), in this process, back to back: the
retention run (media past retention in the tenants the registry names, export archives, audit
events), the due-deletion purge and the unverified-signup removal. Every tenant has a schema
with a few live media rows; a tenth also holds recently deleted media (a note in the registry
that is not due yet), so the index the run reads is not empty. A due tenant holds `--media`
items deleted before the retention cut-off, rows and files: its purge is the work a run must
do. Each pass is timed `--repeat` times (the due state rebuilt before each) and the median
kept; the tenant schemas a pass opened are counted (a count, not a time).

For comparison, `scan every schema`: the same media check opened in every tenant, as a
retention run that does not know what is due (the django-tenants #719 pattern) does.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from backend.cli.tasks import scheduled
from backend.infrastructure.sql.unit_of_work import SqlTenantUnitOfWork
from bench.common import BenchDatabase, Report, ms, profiled

FILE_BYTES = 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenants", type=int, default=1000, help="tenants with a schema (N)")
    parser.add_argument("--media", type=int, default=20, help="media items past retention per due tenant")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per case (median kept)")


class CountingWiring(scheduled._Wiring):
    """The worker's wiring, counting the tenant schemas a pass opens."""

    def __init__(self, flask_app) -> None:
        super().__init__(flask_app)
        self.opened: set = set()

    def tenant_uow(self, tenant) -> SqlTenantUnitOfWork:
        self.opened.add(tenant.id)
        return super().tenant_uow(tenant)


def periodic_pass(db: BenchDatabase) -> tuple[float, int]:
    """The three periodic runs back to back, as the worker runs them; (seconds, schemas opened)."""
    wiring = CountingWiring(db.app)
    with db.app.app_context():
        started = time.perf_counter()
        now = datetime.now(UTC)
        report = scheduled.run_retention(wiring, now)
        purges = scheduled.run_due_purges(wiring, now)
        unverified = scheduled.run_unverified_removal(wiring, now)
        seconds = time.perf_counter() - started
    failures = report.failures + purges.failures + unverified.failures
    if failures:
        raise SystemExit(f"the periodic pass failed: {failures[:3]}")
    return seconds, len(wiring.opened)


def add_media(db: BenchDatabase, tenant, count: int, deleted_at: datetime | None, files: bool) -> None:
    """`count` media rows in the tenant (soft-deleted at `deleted_at`, noted in the registry as
    the media service does), and their files when `files`."""
    with SqlTenantUnitOfWork(db.owner_engine, tenant.schema_name) as uow:
        uow.connection.execute(
            text(
                "INSERT INTO clients (id, name)"
                " SELECT gen_random_uuid(), 'C' WHERE NOT EXISTS (SELECT FROM clients)"
            )
        )
        ids = (
            uow.connection.execute(
                text(
                    "INSERT INTO media (id, client_id, filename, content_type, size_bytes, sha256,"
                    " uploaded_by, uploaded_by_role, deleted_at)"
                    " SELECT gen_random_uuid(), c.id, 'f' || n || '.png', 'image/png', :size,"
                    " repeat('0', 64), gen_random_uuid(), 'worker', :deleted"
                    " FROM generate_series(1, :n) n, (SELECT min(id::text)::uuid AS id FROM clients) c"
                    " RETURNING id"
                ),
                {"n": count, "size": FILE_BYTES, "deleted": deleted_at},
            )
            .scalars()
            .all()
        )
        if deleted_at is not None:
            uow.media_trash.trashed(deleted_at)
        uow.commit()
    if files:
        folder = db.settings.media_dir / str(tenant.id)
        folder.mkdir(parents=True, exist_ok=True)
        for media_id in ids:
            (folder / str(media_id)).write_bytes(b"\0" * FILE_BYTES)


def scan_every_schema(db: BenchDatabase, tenants: list, cutoff: datetime) -> float:
    started = time.perf_counter()
    for tenant in tenants:
        with SqlTenantUnitOfWork(db.owner_engine, tenant.schema_name) as uow:
            uow.media.count_deleted_before(cutoff)
    return time.perf_counter() - started


def timed(db: BenchDatabase, repeat: int, prepare) -> tuple[float, int]:
    """Median seconds of `repeat` passes, each after `prepare()`; the schemas the last opened."""
    seconds, opened = [], 0
    for _ in range(repeat):
        prepare()
        elapsed, opened = periodic_pass(db)
        seconds.append(elapsed)
    return statistics.median(seconds), opened


def run(args: argparse.Namespace) -> Report:
    n = 30 if args.quick else args.tenants
    repeat = 2 if args.quick else args.repeat
    media = 3 if args.quick else args.media
    notes: list[str] = []
    with BenchDatabase() as db:
        started = time.perf_counter()
        tenants = [db.provision(f"ret-{i:05d}") for i in range(n)]
        now = datetime.now(UTC)
        retention_days = db.settings.media_retention_days
        past = now - timedelta(days=retention_days + 5)
        for index, tenant in enumerate(tenants):
            add_media(db, tenant, 3, None, files=False)
            if index % 10 == 5:  # a tenth with a trash that is not due yet
                add_media(db, tenant, 2, now - timedelta(days=1), files=False)
        setup_s = time.perf_counter() - started
        notes.append(
            f"setup: {n} tenants, 3 live media rows each, 1 in 10 with recent trash: {setup_s:.1f} s"
        )
        periodic_pass(db)  # warm-up: pools, statements; also settles nothing (nothing due)
        nothing, opened_nothing = timed(db, repeat, lambda: None)
        with profiled(args, "retention"):
            one, opened_one = timed(db, repeat, lambda: add_media(db, tenants[0], media, past, files=True))
            ten, opened_ten = timed(
                db, repeat, lambda: [add_media(db, t, media, past, files=True) for t in tenants[1:11]]
            )
        scan = statistics.median(scan_every_schema(db, tenants, past) for _ in range(repeat))
        server = db.server_version()
    rows = [
        ["nothing due", ms(nothing), str(opened_nothing)],
        ["1 tenant due", ms(one), str(opened_one)],
        ["10 tenants due", ms(ten), str(opened_ten)],
        [f"scan every schema ({n}), for comparison", ms(scan), str(n)],
    ]
    marginal = (ten - nothing) / (one - nothing) if one > nothing else float("nan")
    notes += [
        "a pass: retention (media, exports, audit events) + due purges + unverified signups, in one "
        f"process with the worker's code; median of {repeat}; {media} media items (rows and files) "
        "past retention per due tenant",
        f"10 due / 1 due: {ten / one:.2f} of the whole pass; above the nothing-due pass: {marginal:.1f} "
        "(the work of 10 tenants over the work of 1)",
        "schemas opened: tenant units of work the pass created (the registry's indexes decide which)",
        "the server and this process share the machine (2 cores); absolute times are this machine's",
    ]
    return Report(
        headers=["pass", "seconds (median)", "tenant schemas opened"],
        rows=rows,
        settings={"tenants": n, "media_per_due_tenant": media, "repeat": repeat},
        server=server,
        notes=notes,
        figures={
            "nothing_due_s": nothing,
            "one_due_s": one,
            "ten_due_s": ten,
            "ten_due_over_one_due": ten / one,
            "ten_due_marginal_over_one": marginal,
            "opened_nothing_due": opened_nothing,
            "opened_ten_due": opened_ten,
            "scan_every_schema_s": scan,
        },
    )
