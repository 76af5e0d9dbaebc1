"""fleet: request latency with 10 vs N tenant schemas in the cluster (10,000 by default), and
the memory of PostgreSQL's connections as they touch many schemas, then after pool recycling.

The same 10 tenants are read (GET /api/v1/clients through gunicorn) while the cluster holds
10 schemas, then again once the fleet has grown to N by fast provisioning; one gunicorn
serves both passes (a fresh one for the second would hide catalog-cache growth). Memory:
the unique set size (USS) of the server's backend processes, summed, with the pool
recycling connections after --recycle seconds (DB_POOL_RECYCLE_S).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import time

from bench.common import BenchDatabase, Report, ms
from bench.serving import add_server_arguments, gunicorn, load, make_tenants

MIB = 1024 * 1024
SAMPLE = 10  # tenants read in both passes
# `bench.py all` grows the fleet to 1,000 only: 10,000 takes ~5-13 minutes of provisioning alone.
ALL_ARGS = ["--tenants", "1000"]
CLIENT_BACKEND = re.compile(r"^postgres: \S+ \S+ (\[local\]|\S+\(\d+\))")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenants", type=int, default=10_000, help="tenant schemas in the cluster at the end"
    )
    parser.add_argument("--requests", type=int, default=3000, help="requests per latency pass")
    parser.add_argument(
        "--touch", type=int, default=2000, help="tenants read once each to grow catalog caches"
    )
    parser.add_argument("--recycle", type=int, default=20, help="DB_POOL_RECYCLE_S of the server (seconds)")
    add_server_arguments(parser)


def backends_uss(db: BenchDatabase) -> tuple[int, int] | None:
    """(count, summed USS in bytes) of the embedded server's backend processes, or None."""
    if db._server is None:
        return None
    import psutil

    postmaster = psutil.Process(db._server.server.get_pid())
    count, total = 0, 0
    for child in postmaster.children():
        with contextlib.suppress(psutil.Error):
            title = " ".join(child.cmdline())  # "postgres: user db [local] idle"
            if not CLIENT_BACKEND.match(title):  # checkpointer, io worker, ...: not a connection
                continue
            total += child.memory_full_info().uss
            count += 1
    return count, total


def grow_bare(db: BenchDatabase, count: int) -> None:
    """Provision `count` tenants (schema, role, registry row, owner) with no login."""
    for i in range(count):
        db.provision(f"bare-{i:06d}")
        if (i + 1) % 1000 == 0:
            print(f"fleet: {i + 1:,} of {count:,} bare tenants", flush=True)


def memory(value: tuple[int, int] | None) -> str:
    return "n/a (server elsewhere)" if value is None else f"{value[1] / MIB:.1f} MiB in {value[0]} processes"


def run(args: argparse.Namespace) -> Report:
    n = 200 if args.quick else args.tenants
    requests = 300 if args.quick else args.requests
    touch = min(n - SAMPLE, 100 if args.quick else args.touch)
    recycle = 3 if args.quick else args.recycle
    with BenchDatabase() as db:
        sample = make_tenants(db, SAMPLE, 5, "fleet")
        tokens = [token for _, token in sample]
        with gunicorn(db, args, extra_env={"DB_POOL_RECYCLE_S": str(recycle)}) as server:
            load(server, tokens, 200, args)  # warm-up
            small = load(server, tokens, requests, args)
            started = time.perf_counter()
            # Tokens only for the tenants read later; the others are schemas and registry rows,
            # which is all the catalog sees.
            grown = make_tenants(db, touch, 0, "grow")
            grow_bare(db, n - SAMPLE - touch)
            growth_s = time.perf_counter() - started
            load(server, tokens, 200, args)  # warm-up again, as before the first pass
            large = load(server, tokens, requests, args)
            memory_before = backends_uss(db)
            touched = [token for _, token in grown[:touch]]
            load(server, touched, len(touched), args)  # every tenant once per process share
            memory_touched = backends_uss(db)
            time.sleep(recycle + 1)
            load(server, tokens, 200, args)  # connections older than --recycle are replaced
            memory_recycled = backends_uss(db)
        server_version = db.server_version()
    table = [
        [f"p50 / p99 with {SAMPLE} schemas", f"{ms(small.p(50))} / {ms(small.p(99))}", ""],
        [f"p50 / p99 with {n:,} schemas", f"{ms(large.p(50))} / {ms(large.p(99))}", ""],
        [f"p99 {n:,} / {SAMPLE} schemas", f"{large.p(99) / small.p(99):.2f}", "<= 1.3"],
        [f"throughput {n:,} / {SAMPLE} schemas", f"{large.throughput / small.throughput:.2f}", ""],
        ["errors", str(small.errors + large.errors), "0"],
        ["backend memory (USS) before touching many schemas", memory(memory_before), ""],
        [f"backend memory after reading {touch:,} tenants", memory(memory_touched), "reported"],
        [f"backend memory after pool recycling ({recycle} s)", memory(memory_recycled), "bounded"],
    ]
    notes = [
        f"The fleet grew from {SAMPLE} to {n:,} tenants by fast provisioning in {growth_s:.0f} s "
        f"({growth_s / max(1, n - SAMPLE) * 1000:.0f} ms each; {touch:,} of them with a verified worker "
        "and token, the others with their owner only).",
        f"Both latency passes read the same {SAMPLE} tenants, {requests} requests each, through one gunicorn "
        f"({args.workers} workers x {args.threads} threads); load {args.load_processes} processes x "
        f"{args.connections} connections on the same machine as gunicorn and PostgreSQL.",
        "USS = memory private to each PostgreSQL client backend (psutil), summed; "
        "the bench's own connections included.",
    ]
    return Report(
        headers=["figure", "value", "target"],
        rows=table,
        settings={"tenants": n, "requests": requests, "touch": touch, "recycle_s": recycle},
        server=server_version,
        notes=notes,
        figures={"p99_ratio": large.p(99) / small.p(99)},
    )
