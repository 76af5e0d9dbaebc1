"""delete: the purge of a tenant holding N rows (100,000 by default) and M media files (1,000),
seconds reported; and the p99 latency of other tenants' requests (GET /api/v1/clients through
gunicorn) during the purge vs before it. `--purges K` such tenants are purged one after another
(1 s apart) during one load pass: a purge lasts a fraction of a second, and the p99 of the few
dozen requests inside one window would be their maximum.

The tenant is filled by the owner role in its schema (clients, non-overlapping appointments,
media rows) and its files are written to settings.media_dir/<tenant id>/<media id>, as the
storage keeps them. The purge is the operator's: `schedule_deletion` with no grace, then
`purge_tenant` (tokens, schema, files, members, tombstone). The load runs in other processes
on the same machine; the requests that started inside the purge window count as "during".
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import text

from backend.core.db import set_tenant_search_path
from backend.domain.lifecycle import OPERATOR
from backend.infrastructure.sql.deletion import SqlDeletionUnitOfWork
from backend.infrastructure.storage import LocalMediaStorage
from backend.service import deletion
from bench.common import BenchDatabase, Report, ms, profiled
from bench.serving import Load, add_server_arguments, gunicorn, load, make_tenants

FILE_BYTES = 2048


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the purged tenant (all tables)")
    parser.add_argument("--files", type=int, default=1000, help="media files (and rows) of the purged tenant")
    parser.add_argument("--tenants", type=int, default=50, help="other tenants serving requests")
    parser.add_argument("--requests", type=int, default=3000, help="requests of the 'before' pass")
    parser.add_argument("--purges", type=int, default=5, help="tenants purged during the load pass")
    add_server_arguments(parser)


def fill(db: BenchDatabase, tenant, rows: int, files: int) -> None:
    """Clients (1%), media rows (`files`), appointments (the rest) and the media files."""
    client_count = max(1, rows // 100)
    appointment_count = max(0, rows - client_count - files)
    with db.owner_engine.begin() as connection:
        set_tenant_search_path(connection, tenant.schema_name)
        connection.execute(
            text(
                "INSERT INTO clients (id, name)"
                " SELECT gen_random_uuid(), 'Client ' || n FROM generate_series(1, :n) n"
            ),
            {"n": client_count},
        )
        connection.execute(
            text(
                "INSERT INTO appointments (id, client_id, starts_at, ends_at, status)"
                " SELECT gen_random_uuid(), c.ids[1 + n % array_length(c.ids, 1)],"
                " timestamptz '2020-01-01' + n * interval '30 minutes',"
                " timestamptz '2020-01-01' + n * interval '30 minutes' + interval '25 minutes', 'completed'"
                " FROM generate_series(0, :n - 1) n, (SELECT array_agg(id) AS ids FROM clients) c"
            ),
            {"n": appointment_count},
        )
        media_ids = (
            connection.execute(
                text(
                    "INSERT INTO media (id, client_id, filename, content_type, size_bytes, sha256,"
                    " uploaded_by, uploaded_by_role)"
                    " SELECT gen_random_uuid(), c.ids[1 + n % array_length(c.ids, 1)], 'f' || n || '.png',"
                    " 'image/png', :size, repeat('0', 64), gen_random_uuid(), 'worker'"
                    " FROM generate_series(0, :n - 1) n, (SELECT array_agg(id) AS ids FROM clients) c"
                    " RETURNING id"
                ),
                {"n": files, "size": FILE_BYTES},
            )
            .scalars()
            .all()
        )
    folder = db.settings.media_dir / str(tenant.id)
    folder.mkdir(parents=True, exist_ok=True)
    payload = b"\x89PNG" + b"\0" * (FILE_BYTES - 4)
    for media_id in media_ids:
        (folder / str(media_id)).write_bytes(payload)


PURGE_GAP_S = 1.0


def purge(db: BenchDatabase, tenant) -> tuple[float, float, dict]:
    """Schedule (no grace) and purge the tenant; the epoch seconds of the purge and its steps."""
    now = datetime.now(UTC)

    def uow() -> SqlDeletionUnitOfWork:
        return SqlDeletionUnitOfWork(db.owner_engine, db.runtime.runtime_role)

    deletion.schedule_deletion(slug=tenant.slug, grace_days=0, now=now, actor=OPERATOR, uow=uow())
    started = time.time()
    report = deletion.purge_tenant(
        tenant_id=tenant.id,
        now=datetime.now(UTC),
        actor=OPERATOR,
        uow_factory=uow,
        storage=LocalMediaStorage(db.settings.media_dir),
    )
    return started, time.time(), report.steps


def run(args: argparse.Namespace) -> Report:
    rows = 2000 if args.quick else args.rows
    files = 20 if args.quick else args.files
    others = 5 if args.quick else args.tenants
    requests = 200 if args.quick else args.requests
    purges = 2 if args.quick else args.purges
    with BenchDatabase() as db:
        victims = [tenant for tenant, _ in make_tenants(db, purges, 0, "victim")]
        for victim in victims:
            fill(db, victim, rows, files)
        tokens = [token for _, token in make_tenants(db, others, 5, "other")]
        with gunicorn(db, args) as server:
            load(server, tokens, max(200, 2 * len(tokens)), args)  # warm-up
            before = load(server, tokens, requests, args)
            during_load = {}
            # Long enough for every purge and its gap at the 'before' pass's rate, and then some.
            during_requests = requests + int(purges * PURGE_GAP_S * len(before.latencies) / before.seconds)
            runner = threading.Thread(
                target=lambda: during_load.setdefault("load", load(server, tokens, during_requests, args))
            )
            runner.start()
            time.sleep(min(2.0, before.seconds / 4))  # the load is under way
            windows = []
            with profiled(args, "purge"):
                for victim in victims:
                    started, ended, steps = purge(db, victim)
                    windows.append((started, ended))
                    time.sleep(PURGE_GAP_S)
            runner.join()
        leftover = any((db.settings.media_dir / str(victim.id)).exists() for victim in victims)
        server_version = db.server_version()
    inside = [during_load["load"].between(started, ended) for started, ended in windows]
    during = Load.merged(inside)
    seconds = [ended - started for started, ended in windows]
    ratio = during.p(99) / before.p(99) if during.latencies else float("nan")
    table = [
        [
            f"purge of {rows:,} rows and {files:,} files, {purges} tenants: each / slowest",
            f"{', '.join(f'{one:.2f}' for one in seconds)} s / {max(seconds):.2f} s",
            "reported",
        ],
        ["purge steps (items), last tenant", ", ".join(f"{k}={v}" for k, v in steps.items()), ""],
        ["media folders left behind", "yes" if leftover else "no", "no"],
        ["other tenants p50 / p99 before", f"{ms(before.p(50))} / {ms(before.p(99))}", ""],
        [
            f"other tenants p50 / p99 during ({len(during.latencies)} requests)",
            f"{ms(during.p(50))} / {ms(during.p(99))}",
            "",
        ],
        ["p99 during / before", f"{ratio:.2f}", "<= 1.5"],
        ["errors (before + whole during pass)", str(before.errors + during_load["load"].errors), "0"],
    ]
    notes = [
        f"{others} other tenants (5 clients each) read GET /api/v1/clients through gunicorn "
        f"{args.workers} workers x {args.threads} threads; load {args.load_processes} processes x "
        f"{args.connections} connections, {requests} requests per pass; 'during' = requests that "
        "started inside a purge window (the windows of all purges together; the load ran throughout).",
        "The purge runs in the benchmark process as the operator's `tenants delete --now` does; the "
        "load generator, gunicorn and PostgreSQL share the machine.",
    ]
    return Report(
        headers=["figure", "value", "target"],
        rows=table,
        settings={"rows": rows, "files": files, "purges": purges, "tenants": others, "requests": requests},
        server=server_version,
        notes=notes,
        figures={"purge_seconds": max(seconds), "p99_during_over_before": ratio},
    )
