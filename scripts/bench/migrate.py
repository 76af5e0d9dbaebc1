"""migrate: a realistic revision (new column + index) applied to N tenants with --jobs 1, 2, 4,
then a run with nothing pending over N tenants and over a 10,000-row registry.

Each migrate run is `tenants migrate --jobs J` in a process of its own
(scripts/bench/migrate_child.py), so its wall time and memory are the command's. The
revisions go into a temporary copy of tenant_migrations, one per job count, each on top of
the previous one (three releases in a row): the repository's tree is never written to.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from psycopg import sql as psql
from sqlalchemy import func, select, text

from backend.core.tenancy import schema_identifier
from backend.infrastructure.sql.tenants import tenants
from bench.common import BenchDatabase, Report, ms
from bench.trees import add_revision, copy_tree

CHILD = Path(__file__).with_name("migrate_child.py")
# The totals line of `tenants migrate`: how many tenants went by step script, how many by the chain.
METHODS_RE = re.compile(r"(\d+) migrated \((\d+) by step script, (\d+) by the migration chain\)")
REVISION = """
op.add_column("clients", sa.Column("{column}", sa.DateTime(timezone=True)))
op.create_index("ix_clients_{column}", "clients", ["{column}"])
"""
DOWNGRADE = """
op.drop_index("ix_clients_{column}", table_name="clients")
op.drop_column("clients", "{column}")
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenants", type=int, default=1000, help="tenants with a schema (N)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4], help="job counts to compare")
    parser.add_argument(
        "--registry-rows", type=int, default=10_000, help="registry size of the last nothing-pending run"
    )
    parser.add_argument("--clients", type=int, default=20, help="client rows per tenant (the index has rows)")


def provision(db: BenchDatabase, count: int, clients: int) -> float:

    started = time.perf_counter()
    for i in range(count):
        tenant = db.provision(f"bench-{i:06d}")
        statement = psql.SQL(
            "INSERT INTO {}.clients (id, name, email) "
            "SELECT gen_random_uuid(), 'Client ' || i, 'client' || i || '@example.com' "
            "FROM generate_series(1, %(clients)s) AS i"
        ).format(schema_identifier(tenant.schema_name))
        with db.owner_engine.begin() as connection:
            connection.exec_driver_sql(statement.as_string(None), {"clients": clients})
    return time.perf_counter() - started


def add_registry_rows(db: BenchDatabase, total: int, head: str) -> int:
    """Registry rows without schemas, at head, up to `total` rows: a nothing-pending run reads
    only the registry, so what it costs depends on the rows, not on the schemas."""
    with db.owner_engine.begin() as connection:
        existing = connection.execute(select(func.count()).select_from(tenants)).scalar_one()
        missing = max(0, total - existing)
        connection.execute(
            text(
                "INSERT INTO shared.tenants (id, slug, name, schema_name, status, plan, schema_version) "
                "SELECT id, 'registry-' || i, 'Registry ' || i, 'tenant_' || replace(id::text, '-', ''), "
                "'active', 'trial', :head "
                "FROM (SELECT gen_random_uuid() AS id, i FROM generate_series(1, :missing) AS i) AS rows"
            ),
            {"head": head, "missing": missing},
        )
    return missing


def migrate_run(db: BenchDatabase, tree: Path, jobs: int, profile: Path | None = None) -> dict:
    server_before = db.server_cpu_seconds()
    env = {
        **os.environ,
        "DATABASE_URL": db.settings.database_url,
        "MIGRATION_DATABASE_URL": db.settings.owner_database_url,
        "VAR_DIR": str(db.settings.var_dir),
    }
    done = subprocess.run(
        [sys.executable, str(CHILD), str(tree), str(jobs), *([str(profile)] if profile else [])],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(
            f"migrate run failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    result = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    if result["exit_code"] != 0:
        raise SystemExit(f"tenants migrate exited {result['exit_code']}:\n{done.stdout[-3000:]}")
    server_after = db.server_cpu_seconds()
    result["server_cpu_seconds"] = None if server_before is None else server_after - server_before
    totals = METHODS_RE.search(done.stdout)
    result["by_script"], result["by_chain"] = (totals.group(2), totals.group(3)) if totals else ("?", "?")
    return result


def profile_path(args: argparse.Namespace, jobs: int) -> Path | None:
    """With --profile FILE: a pyinstrument profile of the --jobs 1 run (tenants migrated in the
    command's own process, so the profile shows a worker's per-tenant work)."""
    if not args.profile or jobs != 1:
        return None
    return args.profile.with_name(f"{args.profile.stem}-migrate-jobs1{args.profile.suffix}")


def at_head(db: BenchDatabase, head: str) -> int:
    with db.owner_engine.connect() as connection:
        return connection.execute(
            select(func.count()).where(
                tenants.c.schema_version == head, tenants.c.last_migration_error.is_(None)
            )
        ).scalar_one()


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def cpu_per_tenant(result: dict, tenants: int) -> str:
    """CPU milliseconds per tenant: the command's processes (+ the server's, when embedded)."""
    client = result["cpu_seconds"] * 1000 / tenants
    server = result["server_cpu_seconds"]
    return f"{client:.1f}" + ("" if server is None else f" + {server * 1000 / tenants:.1f}")


def process_memory(result: dict) -> str:
    """Peak resident memory of the migrating process; its growth over the whole run, and after
    the first tenth of the run (warm: what keeps growing with the number of tenants)."""
    whole = result["rss_peak_kib"] - result["rss_start_kib"]
    after_warm_up = result["rss_peak_kib"] - result["rss_at_tenth_kib"]
    return f"{mib(result['rss_peak_kib'])} (+{mib(whole)} / +{mib(after_warm_up)})"


def run(args: argparse.Namespace) -> Report:
    n = 6 if args.quick else args.tenants
    job_counts = [1, 2] if args.quick else args.jobs
    registry_rows = 40 if args.quick else args.registry_rows
    clients = 2 if args.quick else args.clients
    rows: list[list[str]] = []
    notes: list[str] = []
    runs: list[dict] = []
    with BenchDatabase() as db, tempfile.TemporaryDirectory(prefix="bench-tree-") as tmp:
        setup = provision(db, n, clients)
        notes.append(
            f"setup: {n} tenants provisioned (fast path) with {clients} clients each in {setup:.1f} s"
        )
        tree = copy_tree(Path(tmp) / "tenant_migrations")
        head = None
        for index, jobs in enumerate(job_counts, start=1):
            column = f"bench_{index}_jobs{jobs}_at"
            head = add_revision(
                tree,
                f"bench_{index}_jobs{jobs}",
                REVISION.format(column=column),
                DOWNGRADE.format(column=column),
                message=f"benchmark: {column} + index",
            )
            result = migrate_run(db, tree, jobs, profile_path(args, jobs))
            runs.append(result)
            migrated = at_head(db, head)
            rows.append(
                [
                    f"add column + index, --jobs {jobs}",
                    str(migrated),
                    f"{result['seconds']:.2f} s",
                    f"{migrated / result['seconds']:.0f}",
                    f"{result['by_script']} / {result['by_chain']}",
                    cpu_per_tenant(result, migrated),
                    process_memory(result),
                    mib(result["worker_peak_kib"]) if jobs > 1 else "-",
                ]
            )
        idle = migrate_run(db, tree, 1)
        rows.append(nothing_pending_row(f"nothing pending, {n} tenants", n, idle))
        added = add_registry_rows(db, registry_rows, head)
        idle_large = migrate_run(db, tree, 1)
        rows.append(nothing_pending_row(f"nothing pending, {n + added} registry rows", n + added, idle_large))
        notes.append(
            f"the {added} extra registry rows have no schema (creating {n + added} real schemas is slow); "
            "a nothing-pending run reads only the registry and never opens a schema, so rows suffice"
        )
        server = db.server_version()
    notes.append(
        "seconds: wall time of `tenants migrate` inside its process (shared check, registry plan, "
        "tenants, summary), without interpreter start-up; workers are forked from a preloaded fork server"
    )
    notes.append(
        "by script / chain: tenants upgraded by the step's SQL script (one round trip) and by the "
        "Alembic chain (`tenants migrate` totals)"
    )
    notes.append(
        "CPU: time the command's processes (parent, fork server, workers) and the embedded server spent, "
        "per tenant: what the run costs whatever else shares the machine; without the benchmark's own "
        "memory sampler (it looks its processes up once a second)"
    )
    notes.append(
        "memory: resident set of the command's process, peak, and its growth over the whole run and "
        "after the first tenth of it (flat = 0); and the peak of the largest worker process"
    )
    return Report(
        headers=[
            "run",
            "tenants",
            "seconds",
            "tenants/s",
            "by script / chain",
            "CPU ms/tenant (command + server)",
            "process peak RSS (growth: run / after 1st tenth)",
            "worker peak RSS",
        ],
        rows=rows,
        settings={
            "tenants": n,
            "jobs": " ".join(map(str, job_counts)),
            "registry_rows": registry_rows,
            "clients_per_tenant": clients,
        },
        server=server,
        notes=notes,
        figures={
            "seconds_best": min(result["seconds"] for result in runs),
            "nothing_pending_s": idle["seconds"],
            "nothing_pending_registry_s": idle_large["seconds"],
            "rss_growth_mib": max(result["rss_peak_kib"] - result["rss_start_kib"] for result in runs) / 1024,
        },
    )


def nothing_pending_row(label: str, count: int, result: dict) -> list[str]:
    return [
        label,
        str(count),
        ms(result["seconds"]),
        f"{count / result['seconds']:.0f}",
        "-",
        cpu_per_tenant(result, count),
        process_memory(result),
        "-",
    ]
