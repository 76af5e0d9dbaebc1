"""requests: gunicorn serving GET /api/v1/clients for tokens spread over many tenants vs one
tenant, the real app side by side with the minimal app (scripts/bench/minimal_app.py: only what
the endpoint physically needs), in one run.

Two gunicorn servers with the same settings run at once on loopback, both as the runtime role:
the real app (every check kept: token, revocation, access mode, roles, tenant role, metrics,
access log) and the minimal app (token, one pooled connection, one round trip, json.dumps).
Passes alternate (app single, app multi, minimal single, minimal multi) for `--rounds` rounds
so they share the noise of the moment; the load generator (loadgen.py) runs in other
processes of the same machine and reconnects now and then so both workers share the load.
The figures that count are ratios of this one run: the app's CPU per request against the
minimal app's, and the multi-tenant cost of each against its own single-tenant pass.
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
MINIMAL_APP = "bench.minimal_app:app"
# performance.md: at most 2 requests per tenant before the passes (a cold (tenant, connection)
# pair builds PostgreSQL's catalog caches for that tenant's relations on its first query).
WARM_UP_PER_TENANT = 2
RECONNECT_EVERY = 50

# `bench.py all` (under 15 minutes in all): fewer requests per pass, the same 1,000 tenants.
ALL_ARGS = ["--requests", "2000", "--rounds", "2"]
SERVERS = ("app", "minimal")
PASSES = ("single", "multi")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenants", type=int, default=1000, help="tenants the multi-tenant pass spreads over"
    )
    parser.add_argument("--clients", type=int, default=50, help="clients per tenant (a page is 20)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per pass")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds of the passes")
    parser.add_argument(
        "--warm-up",
        type=int,
        default=WARM_UP_PER_TENANT,
        help="untimed requests per tenant and server before the passes",
    )
    parser.add_argument(
        "--reconnect-every",
        type=int,
        default=RECONNECT_EVERY,
        help="the load generator reopens a connection after this many requests (0: never)",
    )
    add_server_arguments(parser)


class Pass:
    """What one kind of pass measured over its rounds."""

    def __init__(self) -> None:
        self.loads: list[Load] = []
        self.app_cpu = 0.0
        self.db_cpu = 0.0
        self.worker_cpu: dict[int, float] = {}

    @property
    def merged(self) -> Load:
        return Load.merged(self.loads)

    def cpu_per_request(self) -> float:
        return self.app_cpu / sum(len(one.latencies) for one in self.loads)

    def db_per_request(self) -> float:
        return self.db_cpu / sum(len(one.latencies) for one in self.loads)

    def split(self) -> str:
        """Each worker's share of the pass's worker CPU."""
        total = sum(self.worker_cpu.values()) or 1.0
        return " / ".join(f"{100 * seconds / total:.0f}%" for seconds in sorted(self.worker_cpu.values()))


def run(args: argparse.Namespace) -> Report:
    n = 20 if args.quick else args.tenants
    requests = 200 if args.quick else args.requests
    rounds = 1 if args.quick else args.rounds
    passes = {(server, kind): Pass() for server in SERVERS for kind in PASSES}
    with BenchDatabase() as db:
        tokens = [token for _, token in make_tenants(db, n, args.clients, "req")]
        # The app at INFO, production's default: its access line is written for every request
        # (to gunicorn's log file), as the check list says; the minimal app writes none.
        with (
            gunicorn(db, args, extra_env={"LOG_LEVEL": "INFO"}) as app_server,
            gunicorn(db, args, target=MINIMAL_APP) as minimal_server,
        ):
            servers = {"app": app_server, "minimal": minimal_server}
            for server in servers.values():
                load(server, tokens, max(len(tokens) * args.warm_up, 100), args)
            with profiled(args, "requests"):  # the bench process only: the servers are elsewhere
                for round_ in range(rounds):
                    for name, kind in passes:
                        server, measured = servers[name], passes[(name, kind)]
                        pass_tokens = tokens[:1] if kind == "single" else tokens
                        label = f"server-{name}-{kind}"
                        app_before, db_before = server.cpu_seconds(), db.server_cpu_seconds() or 0.0
                        workers_before = server.worker_cpu_seconds()
                        profiling = args if round_ == 0 else NO_PROFILE
                        with (
                            server_profiled(profiling, server, label),
                            postgres_profiled(profiling, db, label),
                        ):
                            measured.loads.append(load(server, pass_tokens, requests, args))
                        measured.app_cpu += server.cpu_seconds() - app_before
                        measured.db_cpu += (db.server_cpu_seconds() or 0.0) - db_before
                        for pid, seconds in server.worker_cpu_seconds().items():
                            used = seconds - workers_before.get(pid, 0.0)
                            measured.worker_cpu[pid] = measured.worker_cpu.get(pid, 0.0) + used
        server = db.server_version()

    app_single, app_multi = passes[("app", "single")], passes[("app", "multi")]
    min_single, min_multi = passes[("minimal", "single")], passes[("minimal", "multi")]

    def throughput_ratio(name: str) -> float:
        return passes[(name, "multi")].merged.throughput / passes[(name, "single")].merged.throughput

    app_cpu = (app_single.app_cpu + app_multi.app_cpu) / (requests * rounds * 2)
    min_cpu = (min_single.app_cpu + min_multi.app_cpu) / (requests * rounds * 2)
    figures = {
        "cpu_ms_app": app_cpu * 1000,
        "cpu_ms_minimal": min_cpu * 1000,
        "cpu_app_over_minimal": app_cpu / min_cpu,
        "cpu_multi_over_single": app_multi.cpu_per_request() / app_single.cpu_per_request(),
        "throughput_multi_over_single": throughput_ratio("app"),
        "throughput_multi_over_single_minimal": throughput_ratio("minimal"),
        "throughput_ratio_over_minimal_ratio": throughput_ratio("app") / throughput_ratio("minimal"),
        "p99_multi_over_single": app_multi.merged.p(99) / app_single.merged.p(99),
        "errors": float(sum(one.merged.errors for one in passes.values())),
    }
    rows = []
    for (name, kind), measured in passes.items():
        merged = measured.merged
        rows.append(
            [
                f"{name}, {'1 tenant' if kind == 'single' else f'{n} tenants'}",
                f"{merged.throughput:.0f} req/s; p50 {ms(merged.p(50))}, p99 {ms(merged.p(99))}; "
                f"CPU/request gunicorn {ms(measured.cpu_per_request())}, "
                f"PostgreSQL {ms(measured.db_per_request())}; worker split {measured.split()}",
                "",
            ]
        )
    rows += [
        ["gunicorn CPU per request, app / minimal", f"{figures['cpu_app_over_minimal']:.2f}", "<= 2"],
        ["app CPU per request, multi / single", f"{figures['cpu_multi_over_single']:.3f}", "<= 1.05"],
        [
            "throughput multi / single: app, minimal; app's over minimal's",
            f"{figures['throughput_multi_over_single']:.3f}, "
            f"{figures['throughput_multi_over_single_minimal']:.3f}; "
            f"{figures['throughput_ratio_over_minimal_ratio']:.3f}",
            ">= 0.97 (the last)",
        ],
        [
            "app throughput multi / single, round by round",
            ", ".join(
                f"{m.throughput / s.throughput:.2f}"
                for s, m in zip(app_single.loads, app_multi.loads, strict=True)
            ),
            "reported",
        ],
        ["app p99 multi / single", f"{figures['p99_multi_over_single']:.2f}", "<= 1.2"],
        ["errors (non-200 or connection errors), all passes", f"{figures['errors']:.0f}", "0"],
    ]
    notes = [
        f"GET /api/v1/clients (first page of 20, {args.clients} clients per tenant), {requests} requests per "
        f"pass, {rounds} alternated rounds; gunicorn {args.workers} workers x {args.threads} threads "
        f"(gthread) for both apps; load: {args.load_processes} Python processes x {args.connections} "
        f"keep-alive connections (http.client), each reopened every {args.reconnect_every} requests, on the "
        "same machine as gunicorn and PostgreSQL.",
        "The app runs at LOG_LEVEL=INFO: one JSON access line per request, written to gunicorn's log file.",
        "CPU per request: CPU seconds of gunicorn's master and workers (and of the PostgreSQL server) "
        "over the pass, divided by its requests. Worker split: each worker's share of that CPU.",
        f"Warm-up: {args.warm_up} requests per tenant and server before the passes.",
        "minimal app = scripts/bench/minimal_app.py: ES256 token, one pooled connection, search path + "
        "tenant role + page + count in one round trip, json.dumps; no registry lookup, access mode, "
        "revocation, metrics or log line.",
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
            "warm_up": args.warm_up,
        },
        server=server,
        notes=notes,
        figures=figures,
    )
