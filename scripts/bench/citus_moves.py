"""citus_moves: `tenants move` of tenants of growing size while they take writes, on the local
Citus cluster (behind a PgBouncer per worker unless CITUS_POOLERS=0): per size, how long the
move took, the longest write during it (the write-blocked window) and the writes that failed,
with their status, detail and Retry-After.

Behind PgBouncer 1.18 `--mode auto` runs as block_writes (docs/scale-out.md, "Worker
connections"): a write to the moving tenant waits for the whole copy, up to the runtime role's
lock_timeout (5 s), then answers 503. The sizes are long to run (minutes at 300,000 rows on a
loaded 2-core machine): this is never part of `all` nor of the test suite; the figures are
written in docs/scale-out.md ("Placement and moving tenants").
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from backend.infrastructure import citus_cluster
from backend.infrastructure.sql.placement import effective_mode
from bench.citus import cluster, fill, move_under_load, serving
from bench.common import Report
from bench.serving import add_server_arguments, make_tenants


def skip_in_all(*, quick: bool) -> str | None:
    return "minutes per size: run `scripts/bench.py citus_moves` on its own"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        default="10000,100000,300000",
        help="comma-separated rows of each tenant moved (one move per size)",
    )
    parser.add_argument("--writers", type=int, default=3, help="threads writing to the moving tenant")
    parser.add_argument("--mode", default="auto", help="transfer mode asked of `tenants move`")
    add_server_arguments(parser)


def run(args: argparse.Namespace) -> Report:
    sizes = [1000] if args.quick else [int(size) for size in args.sizes.split(",")]
    reason = citus_cluster.unavailable_reason()
    if reason:
        raise SystemExit(f"citus_moves benchmark: {reason}")
    rows, figures = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-citus-moves-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)  # the nodes run as the server user, who must reach their folders
        (base / "nodes").mkdir(mode=0o755)
        with cluster(base / "nodes" / "cluster") as (multi, nodes):
            pooled = bool(nodes.poolers)
            with multi.owner_engine.connect() as connection:
                ran_as = effective_mode(connection, args.mode)
            with serving(multi, args) as server:
                for size in sizes:
                    # A fresh other tenant per size: its writer's names restart at each move.
                    moving, other = (
                        make_tenants(multi, 1, 0, f"move{size}")[0],
                        make_tenants(multi, 1, 20, f"other{size}")[0],
                    )
                    started = time.perf_counter()
                    fill(multi, moving[0].schema_name, size)
                    print(f"{size:,} rows in {time.perf_counter() - started:.1f} s; moving", flush=True)
                    with multi.owner_engine.connect() as connection:
                        size_text = connection.execute(
                            text(
                                "SELECT schema_size FROM public.citus_schemas"
                                " WHERE schema_name = CAST(:schema AS regnamespace)"
                            ),
                            {"schema": moving[0].schema_name},
                        ).scalar()
                    move = move_under_load(multi, server, args, moving, other)
                    failed = ", ".join(f"{key}: {n}" for key, n in sorted(move.failures.items())) or "none"
                    rows.append([
                        f"{size:,}", size_text, f"{move.seconds:.2f} s", f"{move.blocked_s:.3f} s",
                        str(move.acknowledged), f"{move.lost} / {move.duplicated} / {move.foreign}", failed,
                    ])  # fmt: skip
                    print(" | ".join(rows[-1]), flush=True)
                    figures[f"move_seconds_{size}"] = move.seconds
                    figures[f"write_blocked_s_{size}"] = move.blocked_s
                    figures[f"failed_writes_{size}"] = sum(move.failures.values())
                    figures[f"lost_writes_{size}"] = move.lost + move.duplicated + move.foreign
            server_version = f"{multi.server_version()} (3 local nodes)"
    return Report(
        headers=[
            "rows",
            "schema size (citus_schemas)",
            "move",
            "longest write during it",
            "writes acknowledged",
            "lost / duplicated / wrong tenant",
            "failed writes (status detail Retry-After: count)",
        ],
        rows=rows,
        settings={
            "sizes": ",".join(map(str, sizes)),
            "writers": args.writers,
            "mode": args.mode,
            "poolers": pooled,
        },
        server=server_version,
        notes=[
            f"`tenants move --mode {args.mode}`, which Citus ran as {ran_as}"
            + (" (the workers are behind PgBouncer 1.18)" if pooled else " (no poolers)")
            + f"; {args.writers} writer threads POST to the moving tenant and 1 to another tenant"
            " through gunicorn; the window is the longest write overlapping the move.",
        ],
        figures=figures,
    )
