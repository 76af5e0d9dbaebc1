"""requests: gunicorn serving GET /api/v1/clients for tokens spread over many tenants vs
one tenant, and the cost of the per-tenant role switch (runtime role vs the owner role).

Two gunicorn servers run at once on loopback: one connects as the runtime role (every tenant
transaction switches to the tenant's own role, `set_config('role', ...)`), the other as the
owner role, which may CREATE in the schemas and so skips the switch (core/db.py). Passes
alternate (single, multi, owner-multi) for `--rounds` rounds so they share the noise of the
moment; the load generator (loadgen.py) runs in other processes of the same machine.
"""

from __future__ import annotations

import argparse

from bench.common import BenchDatabase, Report, ms, profiled
from bench.serving import (
    Load,
    add_server_arguments,
    gunicorn,
    load,
    make_tenants,
    postgres_profiled,
    server_profiled,
)

NO_PROFILE = argparse.Namespace(server_profile=None, pg_profile=None)
CACHE_COUNTER = "saas_access_cache_lookups_total"

# The steady state of a busy fleet: every pooled connection has served every tenant. Each
# PostgreSQL backend builds its catalog caches for a tenant's relations the first time it
# plans a query on them (relcache, catcache: 8% of the backends' CPU in a pass right after a
# 4-per-tenant warm-up, --pg-profile), and a request reaches any of the 8 connections: after
# 12 requests per tenant a (tenant, connection) pair is warm with probability 1 - (7/8)**12,
# 80%. The cold start itself shows in the round-by-round ratio (docs/benchmarks.md).
WARM_UP_PER_TENANT = 12

# `bench.py all` (under 15 minutes in all): fewer requests per pass, the same 1,000 tenants.
ALL_ARGS = ["--requests", "2000", "--rounds", "2"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenants", type=int, default=1000, help="tenants the multi-tenant pass spreads over"
    )
    parser.add_argument("--clients", type=int, default=5, help="clients per tenant")
    parser.add_argument("--requests", type=int, default=3000, help="requests per pass")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds of the passes")
    parser.add_argument(
        "--warm-up",
        type=int,
        default=WARM_UP_PER_TENANT,
        help="untimed requests per tenant and server before the passes",
    )
    add_server_arguments(parser)


def run(args: argparse.Namespace) -> Report:
    n = 20 if args.quick else args.tenants
    requests = 200 if args.quick else args.requests
    rounds = 1 if args.quick else args.rounds
    with BenchDatabase() as db:
        made = make_tenants(db, n, args.clients, "req")
        tokens = [token for _, token in made]
        passes: dict[str, list[Load]] = {"single": [], "multi": [], "owner multi": []}
        cache_misses = dict.fromkeys(passes, 0.0)
        # CPU seconds per pass: gunicorn (master and workers) and the PostgreSQL server.
        app_cpu, db_cpu = dict.fromkeys(passes, 0.0), dict.fromkeys(passes, 0.0)
        with (
            gunicorn(db, args) as runtime_server,
            gunicorn(db, args, database_url=db.settings.migration_database_url) as owner_server,
        ):
            # Warm-up (WARM_UP_PER_TENANT): the workers' access caches and the backends'
            # catalog caches; the runtime server last, closest to its passes.
            load(owner_server, tokens, max(len(tokens) * args.warm_up, 200), args)
            load(runtime_server, tokens, max(len(tokens) * args.warm_up, 200), args)
            with profiled(args, "requests-multi"):  # the bench process only: the server is elsewhere
                for round_ in range(rounds):
                    # --server-profile: py-spy on the workers during the first round's passes.
                    for name, server, pass_tokens in (
                        ("single", runtime_server, tokens[:1]),
                        ("multi", runtime_server, tokens),
                        ("owner multi", owner_server, tokens),
                    ):
                        label = f"server-{name.replace(' ', '-')}"
                        misses = server.counter(CACHE_COUNTER, result="miss")
                        app_before, db_before = server.cpu_seconds(), db.server_cpu_seconds() or 0.0
                        profiling = args if round_ == 0 else NO_PROFILE
                        with (
                            server_profiled(profiling, server, label),
                            postgres_profiled(profiling, db, label),
                        ):
                            passes[name].append(load(server, pass_tokens, requests, args))
                        app_cpu[name] += server.cpu_seconds() - app_before
                        db_cpu[name] += (db.server_cpu_seconds() or 0.0) - db_before
                        cache_misses[name] += server.counter(CACHE_COUNTER, result="miss") - misses
        server = db.server_version()

    def per_request(seconds: float) -> str:
        return ms(seconds / (requests * rounds))

    single, multi, owner = (Load.merged(passes[name]) for name in ("single", "multi", "owner multi"))
    rows = [
        [f"{name}: throughput", f"{one.throughput:.0f} req/s", ""]
        for name, one in (
            ("single tenant", single),
            (f"{n} tenants", multi),
            (f"{n} tenants, owner role", owner),
        )
    ]
    rows += [
        [f"{name}: p50 / p99", f"{ms(one.p(50))} / {ms(one.p(99))}", ""]
        for name, one in (
            ("single tenant", single),
            (f"{n} tenants", multi),
            (f"{n} tenants, owner role", owner),
        )
    ]
    rows += [
        ["throughput multi / single", f"{multi.throughput / single.throughput:.2f}", ">= 0.95"],
        [
            "throughput multi / single, round by round",
            ", ".join(
                f"{m.throughput / s.throughput:.2f}"
                for s, m in zip(passes["single"], passes["multi"], strict=True)
            ),
            "reported",
        ],
        ["p99 multi / single", f"{multi.p(99) / single.p(99):.2f}", "<= 1.2"],
        [
            "errors (non-200 or connection errors), all passes",
            str(single.errors + multi.errors + owner.errors),
            "0",
        ],
        [
            "role switch: throughput runtime / owner (multi)",
            f"{multi.throughput / owner.throughput:.2f}",
            "reported",
        ],
        ["role switch: p50 runtime / owner (multi)", f"{multi.p(50) / owner.p(50):.2f}", "reported"],
        [
            "CPU per request, gunicorn + PostgreSQL: single / multi / owner multi",
            " / ".join(f"{per_request(app_cpu[name])} + {per_request(db_cpu[name])}" for name in passes),
            "reported",
        ],
        [
            "access cache misses (registry lookups): single / multi",
            f"{cache_misses['single']:.0f} / {cache_misses['multi']:.0f} "
            f"of {requests * rounds} requests each",
            "reported",
        ],
    ]
    notes = [
        f"GET /api/v1/clients (first page, {args.clients} clients per tenant), {requests} requests per pass, "
        f"{rounds} alternated rounds; gunicorn {args.workers} workers x {args.threads} threads (gthread); "
        f"load: {args.load_processes} Python processes x {args.connections} keep-alive connections "
        "(http.client), on the same machine as gunicorn and PostgreSQL.",
        "owner role = a second gunicorn whose DATABASE_URL is the owner role: it may CREATE in the "
        "tenant schemas, so `set_tenant_search_path` skips `set_config('role', ...)`; a benchmark-only "
        "comparison, never a deployment.",
        "Access cache (backend/api/auth.py): entries live 300 s and are evicted by the registry's "
        f"notifications; misses counted from the server's /metrics. Warm-up: {args.warm_up} requests "
        "per tenant and server before the passes (the workers' access caches, the PostgreSQL backends' "
        "catalog caches: see WARM_UP_PER_TENANT).",
    ]
    return Report(
        headers=["figure", "value", "target"],
        rows=rows,
        settings={
            "tenants": n,
            "requests": requests,
            "rounds": rounds,
            "workers": args.workers,
            "threads": args.threads,
        },
        server=server,
        notes=notes,
    )
