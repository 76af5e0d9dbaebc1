"""export: a tenant with N appointment rows (1,000,000 by default), GET /api/v1/export through
gunicorn (streamed, the client discards the bytes) vs plain `COPY ... TO STDOUT` of the same
tables; and the peak RSS growth of the gunicorn worker serving the export.

The rows are generated in the tenant schema by the owner role with INSERT ... SELECT
generate_series: consecutive non-overlapping 25-minute slots every 30 minutes, spread over
the tenant's clients. The export and COPY passes alternate (`--rounds`); the worker's RSS is
sampled with psutil every 20 ms during each export.
"""

from __future__ import annotations

import argparse
import http.client
import os
import threading
import time
from pathlib import Path

import psutil
from psycopg import sql
from sqlalchemy import text

from backend.core.db import set_tenant_search_path
from backend.infrastructure.exports import SqlTenantSnapshot
from bench.common import BenchDatabase, Report, profiled, tree_cpu_seconds
from bench.serving import gunicorn, make_tenants, server_profiled

MIB = 1024 * 1024
SAMPLE_S = 0.02
# `bench.py all` (under 15 minutes in all): generating 1,000,000 rows alone takes ~3 minutes.
ALL_ARGS = ["--rows", "300000"]
READ_BYTES = 256 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1_000_000, help="appointment rows of the tenant")
    parser.add_argument("--clients", type=int, default=1000, help="clients of the tenant")
    parser.add_argument("--rounds", type=int, default=2, help="alternated export / COPY rounds")
    parser.add_argument("--threads", type=int, default=4, help="GUNICORN_THREADS (one worker)")
    parser.add_argument(
        "--server-profile",
        type=Path,
        metavar="FILE",
        help="sample the gunicorn worker with py-spy during the exports only (not the COPY passes): "
        "FILE-exportN gets round N's collapsed stacks, FILE-exportN.txt the largest shares",
    )


def fill(db: BenchDatabase, schema: str, rows: int, client_count: int) -> None:
    """`client_count` clients and `rows` appointments, generated in PostgreSQL."""
    with db.owner_engine.begin() as connection:
        set_tenant_search_path(connection, schema)
        connection.execute(
            text(
                "INSERT INTO clients (id, name, email) SELECT gen_random_uuid(), 'Client ' || n,"
                " 'c' || n || '@bench.example.com' FROM generate_series(1, :n) AS n"
            ),
            {"n": client_count},
        )
        connection.execute(
            text(
                "INSERT INTO appointments (id, client_id, starts_at, ends_at, status, notes)"
                " SELECT gen_random_uuid(), c.ids[1 + n % array_length(c.ids, 1)],"
                " timestamptz '2020-01-01' + n * interval '30 minutes',"
                " timestamptz '2020-01-01' + n * interval '30 minutes' + interval '25 minutes',"
                " 'completed', 'note ' || n"
                " FROM generate_series(0, :n - 1) AS n,"
                " (SELECT array_agg(id) AS ids FROM clients) AS c"
            ),
            {"n": rows},
        )
        connection.execute(text("ANALYZE appointments"))


def plain_copy(db: BenchDatabase, schema: str) -> tuple[float, int]:
    """Seconds and bytes of COPY ... TO STDOUT (csv, header) of every table the export holds."""
    with db.owner_engine.connect() as connection:
        tables = SqlTenantSnapshot(connection, schema).tables()
        cursor = connection.connection.driver_connection.cursor()
        total = 0
        started = time.perf_counter()
        for table in tables:
            statement = sql.SQL("COPY (SELECT * FROM {}) TO STDOUT WITH (FORMAT csv, HEADER true)")
            with cursor.copy(statement.format(sql.Identifier(schema, table))) as copy:
                for data in copy:
                    total += len(data)
        seconds = time.perf_counter() - started
        cursor.close()
        connection.rollback()
    return seconds, total


def api_export(port: int, token: str, worker: psutil.Process) -> tuple[float, int, int, int]:
    """Seconds and bytes of GET /api/v1/export, and the worker's RSS before and at its peak."""
    before = worker.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_S):
            try:
                peak[0] = max(peak[0], worker.memory_info().rss)
            except psutil.Error:
                return

    sampler = threading.Thread(target=sample)
    sampler.start()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    try:
        connection.request("GET", "/api/v1/export", headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        if response.status != 200:
            raise SystemExit(f"export answered {response.status}: {response.read()[:300]!r}")
        total = 0
        while chunk := response.read(READ_BYTES):
            total += len(chunk)
        seconds = time.perf_counter() - started
    finally:
        done.set()
        sampler.join()
        connection.close()
    return seconds, total, before, peak[0]


def run(args: argparse.Namespace) -> Report:
    rows = 5000 if args.quick else args.rows
    client_count = 50 if args.quick else args.clients
    rounds = 1 if args.quick else args.rounds
    args.workers = 1  # one worker: its RSS is the serving process's
    with BenchDatabase() as db:
        [(tenant, token)] = make_tenants(db, 1, 0, "export")
        started = time.perf_counter()
        fill(db, tenant.schema_name, rows, client_count)
        fill_seconds = time.perf_counter() - started
        exports, copies = [], []
        # CPU seconds per pass: the gunicorn worker's, and the whole PostgreSQL cluster's.
        worker_cpu, pg_cpu_export, pg_cpu_copy = [], [], []
        load_before = os.getloadavg()
        with gunicorn(db, args) as server:
            [pid] = server.worker_pids()
            worker = psutil.Process(pid)
            with profiled(args, "export-client"):
                for round_number in range(1, rounds + 1):
                    with server_profiled(args, server, f"export{round_number}"):
                        cpu_before, pg_before = tree_cpu_seconds(worker), db.server_cpu_seconds() or 0.0
                        exports.append(api_export(server.port, token, worker))
                        worker_cpu.append(tree_cpu_seconds(worker) - cpu_before)
                        pg_cpu_export.append((db.server_cpu_seconds() or 0.0) - pg_before)
                    pg_before = db.server_cpu_seconds() or 0.0
                    copies.append(plain_copy(db, tenant.schema_name))
                    pg_cpu_copy.append((db.server_cpu_seconds() or 0.0) - pg_before)
        load_after = os.getloadavg()
        server_version = db.server_version()
    export_s = min(e[0] for e in exports)
    copy_s = min(c[0] for c in copies)
    copy_bytes = copies[0][1]
    growth = max(e[3] for e in exports) - exports[0][2]
    table = [
        ["API export, best of rounds", f"{export_s:.2f} s, {exports[0][1] / MIB:.1f} MiB zip", ""],
        ["COPY TO STDOUT (csv), best of rounds", f"{copy_s:.2f} s, {copy_bytes / MIB:.1f} MiB csv", ""],
        ["rows per second: export / COPY", f"{rows / export_s:,.0f} / {rows / copy_s:,.0f}", ""],
        ["export throughput / COPY (rows/s)", f"{copy_s / export_s:.2f}", ">= 0.5"],
        ["worker CPU per export (min of rounds)", f"{min(worker_cpu):.2f} s", ""],
        [
            "PostgreSQL CPU per pass: export / COPY (min)",
            f"{min(pg_cpu_export):.2f} s / {min(pg_cpu_copy):.2f} s",
            "",
        ],
        ["worker RSS before first export", f"{exports[0][2] / MIB:.1f} MiB", ""],
        ["peak RSS growth of the worker during exports", f"{growth / MIB:.1f} MiB", "< 64 MiB"],
    ]
    notes = [
        f"1 tenant, {rows:,} appointments and {client_count:,} clients (generated in {fill_seconds:.0f} s); "
        f"gunicorn 1 worker x {args.threads} threads; {rounds} alternated rounds, the best of each kept.",
        "The export is a zip (CSV per table, deflated) streamed by the worker; COPY is the same tables' CSV "
        "read by psycopg in this process, uncompressed: the ratio includes the compression.",
        "Client, gunicorn and PostgreSQL share the machine; RSS sampled every 20 ms with psutil; "
        f"load average (1, 5, 15 min) {_load(load_before)} before the passes, {_load(load_after)} after.",
    ]
    return Report(
        headers=["figure", "value", "target"],
        rows=table,
        settings={"rows": rows, "clients": client_count, "rounds": rounds},
        server=server_version,
        notes=notes,
        figures={"throughput_over_copy": copy_s / export_s, "rss_growth_mib": growth / MIB},
    )


def _load(averages: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.2f}" for value in averages)
