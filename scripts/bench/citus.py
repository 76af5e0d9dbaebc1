"""citus: the same request load on a Citus coordinator + 2 workers and on one PostgreSQL 15 server
with the same tenants; how the tenants spread over the workers; moving a tenant of 10,000 rows
while it and another tenant take writes.

The cluster's workers each sit behind a PgBouncer (citus_cluster.Pooler) unless CITUS_POOLERS=0,
which runs the design without poolers for comparison. Both setups run at once on this machine
(Debian's PostgreSQL 15, Citus built into it by
../shared/tools/citus/install; backend/infrastructure/citus_cluster.py), each with its own
gunicorn; the read passes alternate between them for `--rounds` rounds so they share the noise
of the moment. The cluster's three nodes, both gunicorns, the load generator and the single
server share the same 2 cores: the ratio measures the coordinator hop's cost on one machine,
not what separate machines would give. So each setup's read passes also measure the CPU time per
request of each of its process groups (`Measured`): on a machine whose cores every process
shares, throughput follows total CPU per request, and the groups say where it goes; one client
on each setup then gives the hop's latency without CPU contention. The move runs `tenants
move` (service.placement with citus_schema_move, transfer mode auto: logical replication, or
writes blocked for the copy behind PgBouncer before 1.23, docs/scale-out.md) under `--writers`
threads POSTing to the moving tenant and one to another; every acknowledged write is then looked up.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from sqlalchemy import text

from backend.core.db import set_tenant_search_path
from backend.infrastructure import citus_cluster, embedded_postgres
from backend.infrastructure.sql.placement import effective_mode
from bench.common import BenchDatabase, Report, ms, tree_cpu_seconds
from bench.serving import Load, add_server_arguments, gunicorn, load, make_tenants

# `bench.py all` (under 15 minutes in all).
ALL_ARGS = ["--tenants", "100", "--requests", "2000", "--rounds", "2"]
WARM_UP_PER_TENANT = 2
RECONNECT_EVERY = 50
ONE_CLIENT_REQUESTS = 400  # per setup, on one connection: the hop's latency without contention


def skip_in_all(*, quick: bool) -> str | None:
    """`all` runs this one only where Citus is installed, and not in its smoke run (`all
    --quick`, part of the test suite): four PostgreSQL servers would double that run's time;
    tests/citus covers the move under load, `bench.py citus --quick` smoke-tests this file."""
    if quick:
        return "four PostgreSQL servers: run `scripts/bench.py citus --quick` on its own"
    return citus_cluster.unavailable_reason()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenants", type=int, default=200, help="tenants on each setup")
    parser.add_argument("--clients", type=int, default=20, help="clients per tenant (a page is 20)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per pass")
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds of the passes")
    parser.add_argument("--move-rows", type=int, default=10000, help="rows of the tenant that moves")
    parser.add_argument("--writers", type=int, default=3, help="threads writing to the moving tenant")
    parser.add_argument(
        "--reconnect-every",
        type=int,
        default=RECONNECT_EVERY,
        help="the load generator reopens a connection after this many requests (0: never)",
    )
    add_server_arguments(parser)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """BenchDatabase and gunicorn read the database and CITUS from the environment."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def single_server(base: Path) -> Iterator[tuple[BenchDatabase, citus_cluster.Node]]:
    node = citus_cluster.start_single(base)
    try:
        urls = {
            "DATABASE_URL": node.url(embedded_postgres.RUNTIME_ROLE, embedded_postgres.DATABASE),
            "MIGRATION_DATABASE_URL": node.url(embedded_postgres.OWNER_ROLE, embedded_postgres.DATABASE),
            "CITUS": "0",
        }
        with _environment(**urls), BenchDatabase() as db:
            db.environment = urls
            yield db, node
    finally:
        node.stop()


@contextlib.contextmanager
def cluster(base: Path) -> Iterator[tuple[BenchDatabase, citus_cluster.CitusCluster]]:
    nodes = citus_cluster.start(base)
    try:
        urls = {"DATABASE_URL": nodes.runtime_url, "MIGRATION_DATABASE_URL": nodes.owner_url, "CITUS": "1"}
        with _environment(**urls), BenchDatabase(citus=True) as db:
            db.environment = urls
            yield db, nodes
    finally:
        nodes.stop()


@contextlib.contextmanager
def serving(db: BenchDatabase, args: argparse.Namespace):
    with _environment(**db.environment), gunicorn(db, args) as server:
        yield server


def postmaster(node: citus_cluster.Node) -> psutil.Process:
    """A node's postmaster (first line of postmaster.pid). It is the parent
    of all the node's processes and reaps each one that exits, so a backend that ends during a
    pass is counted too: its time moves into the postmaster's reaped-children time
    (tree_cpu_seconds adds it)."""
    return psutil.Process(int((node.data_dir / "postmaster.pid").read_text().split()[0]))


@dataclass
class Measured:
    """The read passes of one setup and the CPU seconds each of its process groups (name:
    the root of a process tree) used during them; the load generator's processes report theirs."""

    groups: dict[str, psutil.Process]
    postmasters: list[psutil.Process]
    loads: list[Load] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    exited: int = 0  # database processes that ended during the passes (counted by their postmaster)

    def run(self, server, tokens: list[str], requests: int, args: argparse.Namespace) -> None:
        pids = self._database_pids()
        before = {name: tree_cpu_seconds(root) for name, root in self.groups.items()}
        result = load(server, tokens, requests, args)
        after = {name: tree_cpu_seconds(root) for name, root in self.groups.items()}
        self.exited += len(pids - self._database_pids())
        self.cpu["load"] += result.cpu_s
        for name in self.groups:
            self.cpu[name] += after[name] - before[name]
        self.loads.append(result)

    def _database_pids(self) -> set[int]:
        return {child.pid for root in self.postmasters for child in root.children(recursive=True)}

    def ms_per_request(self) -> dict[str, float]:
        requests = sum(len(one.latencies) for one in self.loads)
        per_request = {name: 1000 * seconds / requests for name, seconds in self.cpu.items()}
        return per_request | {"total": sum(per_request.values())}


def placements(db: BenchDatabase) -> dict[str, str]:
    from backend.infrastructure.sql.placement import tenant_placements

    with db.owner_engine.connect() as connection:
        return {p.schema_name: p.node for p in tenant_placements(connection)}


def spread(counts: Counter, workers: list[str]) -> float:
    """Largest distance of a worker's tenant count from an even share, as a fraction of it."""
    even = sum(counts.values()) / len(workers)
    return max(abs(counts.get(node, 0) - even) for node in workers) / even


@dataclass
class Writes:
    acknowledged: list[str] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    spans: list[tuple[float, float]] = field(default_factory=list)


def write_until(port: int, token: str, prefix: str, stop: threading.Event, out: Writes) -> None:
    """POST clients named `<prefix>-<n>` on one keep-alive connection until stopped."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    n = 0
    while not stop.is_set():
        name = f"{prefix}-{n}"
        n += 1
        body = json.dumps({"name": name})
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        started = time.monotonic()
        try:
            connection.request("POST", "/api/v1/clients", body=body, headers=headers)
            response = connection.getresponse()
            status = answer(response.status, response.getheader("Retry-After"), response.read())
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            status = "connection error"
        out.spans.append((started, time.monotonic()))
        out.statuses[status] += 1
        if status == "201":
            out.acknowledged.append(name)
    connection.close()


def answer(status: int, retry_after: str | None, body: bytes) -> str:
    """`201`, or a failure as `<status> <detail> Retry-After <s>`: the error contract asks
    for 503 + Retry-After, the detail says which cause (docs/error-codes.md)."""
    if status == 201:
        return "201"
    try:
        detail = json.loads(body).get("detail", "-")
    except (ValueError, AttributeError):
        detail = "(not JSON)"
    return f"{status} {detail} Retry-After {retry_after or 'none'}"


def worker_connections(nodes: citus_cluster.CitusCluster) -> int:
    """Client connections open on the busiest worker (the coordinator's hop opens them)."""
    import psycopg

    counts = []
    for worker in nodes.workers:
        with psycopg.connect(worker.url()) as conn:
            counts.append(
                conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                ).fetchone()[0]
            )
    return max(counts)


def names_in(db: BenchDatabase, schema_name: str) -> Counter:
    with db.owner_engine.begin() as connection:
        set_tenant_search_path(connection, schema_name)
        return Counter(connection.execute(text("SELECT name FROM clients")).scalars())


def fill(db: BenchDatabase, schema_name: str, rows: int) -> None:
    with db.owner_engine.begin() as connection:
        set_tenant_search_path(connection, schema_name)
        connection.execute(
            text(
                "INSERT INTO clients (id, name, email) SELECT gen_random_uuid(), 'row ' || g,"
                " 'row' || g || '@bench.example.com' FROM generate_series(1, :rows) g"
            ),
            {"rows": rows},
        )


@dataclass
class MoveResult:
    seconds: float
    blocked_s: float
    acknowledged: int
    lost: int
    duplicated: int
    foreign: int
    failures: Counter
    source: str
    target: str


def move_under_load(db: BenchDatabase, server, args: argparse.Namespace, moving, other) -> MoveResult:
    from backend.infrastructure.sql.placement import CitusPlacement, worker_nodes
    from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
    from backend.service.placement import move_tenant

    (tenant, token), (other_tenant, other_token) = moving, other
    source = placements(db)[tenant.schema_name]
    with db.owner_engine.connect() as connection:
        target = next(node for node in worker_nodes(connection) if node != source)
    stop = threading.Event()
    moving_writes = [Writes() for _ in range(args.writers)]
    other_writes = Writes()
    threads = [
        threading.Thread(target=write_until, args=(server.port, token, f"m{n}", stop, out))
        for n, out in enumerate(moving_writes)
    ]
    threads.append(
        threading.Thread(target=write_until, args=(server.port, other_token, "o", stop, other_writes))
    )
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        started = time.monotonic()
        move_tenant(
            slug=tenant.slug,
            target=target,
            mode=getattr(args, "mode", "auto"),
            uow_factory=lambda: SqlRegistryUnitOfWork(db.owner_engine, db.runtime.runtime_role),
            placement=CitusPlacement(db.owner_engine),
        )
        ended = time.monotonic()
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert placements(db)[tenant.schema_name] == target, "the tenant did not move"
    acknowledged = Counter(name for out in moving_writes for name in out.acknowledged)
    present = names_in(db, tenant.schema_name)
    present_other = names_in(db, other_tenant.schema_name)
    written = {name for name in present if not name.startswith("row ")}
    lost = sum(1 for name in acknowledged if name not in written)
    lost += sum(1 for name in other_writes.acknowledged if name not in present_other)
    duplicated = sum(count - 1 for count in present.values() if count > 1)
    duplicated += sum(count - 1 for count in present_other.values() if count > 1)
    foreign = sum(1 for name in present_other if name.startswith("m")) + sum(
        1 for name in written if name.startswith("o")
    )
    spans = [span for out in moving_writes for span in out.spans]
    blocked = max((end - start for start, end in spans if end >= started and start <= ended), default=0.0)
    failures = Counter()
    for out in [*moving_writes, other_writes]:
        failures.update({status: n for status, n in out.statuses.items() if status != "201"})
    return MoveResult(
        ended - started,
        blocked,
        sum(acknowledged.values()) + len(other_writes.acknowledged),
        lost,
        duplicated,
        foreign,
        failures,
        source,
        target,
    )


def run(args: argparse.Namespace) -> Report:
    n = 20 if args.quick else args.tenants
    requests = 300 if args.quick else args.requests
    rounds = 1 if args.quick else args.rounds
    move_rows = 1000 if args.quick else args.move_rows
    reason = citus_cluster.unavailable_reason()
    if reason:
        raise SystemExit(f"citus benchmark: {reason}")
    with tempfile.TemporaryDirectory(prefix="bench-citus-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)  # the nodes run as the server user, who must reach their folders
        (base / "nodes").mkdir(mode=0o755)
        with (
            single_server(base / "nodes" / "single") as (single, single_node),
            cluster(base / "nodes" / "cluster") as (multi, nodes),
        ):
            started = time.perf_counter()
            single_tokens = [token for _, token in make_tenants(single, n, args.clients, "one")]
            single_provision_s = time.perf_counter() - started
            started = time.perf_counter()
            made = make_tenants(multi, n, args.clients, "many")
            cluster_provision_s = time.perf_counter() - started
            multi_tokens = [token for _, token in made]
            where = placements(multi)
            if None in where.values():
                raise SystemExit("citus benchmark: a tenant schema on the cluster is not distributed")
            per_worker = Counter(where[tenant.schema_name] for tenant, _ in made)
            worker_names = [f"{citus_cluster.HOST}:{worker.port}" for worker in nodes.workers]
            placement_spread = spread(per_worker, worker_names)
            with serving(single, args) as single_server_, serving(multi, args) as cluster_server:
                servers = {
                    "single": (single_server_, single_tokens),
                    "cluster": (cluster_server, multi_tokens),
                }
                single_db = {"postgres": postmaster(single_node)}
                cluster_db = {"coordinator": postmaster(nodes.coordinator)} | {
                    f"worker{n}": postmaster(worker) for n, worker in enumerate(nodes.workers, start=1)
                }
                poolers = {
                    f"pgbouncer{n}": psutil.Process(pooler.process.pid)
                    for n, pooler in enumerate(nodes.poolers, start=1)
                }
                passes = {
                    "single": Measured(
                        {"api": psutil.Process(single_server_.process.pid), **single_db},
                        list(single_db.values()),
                    ),
                    "cluster": Measured(
                        {"api": psutil.Process(cluster_server.process.pid), **cluster_db, **poolers},
                        list(cluster_db.values()),
                    ),
                }
                for server, tokens in servers.values():
                    load(server, tokens, WARM_UP_PER_TENANT * len(tokens), args)
                for _ in range(rounds):
                    for name, (server, tokens) in servers.items():
                        passes[name].run(server, tokens, requests, args)
                one_client = argparse.Namespace(**{**vars(args), "load_processes": 1, "connections": 1})
                one_client_requests = 50 if args.quick else ONE_CLIENT_REQUESTS
                latency = {
                    name: load(server, tokens, one_client_requests, one_client)
                    for name, (server, tokens) in servers.items()
                }
                connections = worker_connections(nodes)
                moving = make_tenants(multi, 1, 0, "move")[0]
                fill(multi, moving[0].schema_name, move_rows)
                move = move_under_load(multi, cluster_server, args, moving, made[0])
            pooled = bool(nodes.poolers)
            with multi.owner_engine.connect() as connection:
                move_mode = effective_mode(connection, "auto")
            server_version = f"{multi.server_version()} (3 local nodes) vs {single.server_version()}"
    single_load, cluster_load = Load.merged(passes["single"].loads), Load.merged(passes["cluster"].loads)
    cpu = {name: measured.ms_per_request() for name, measured in passes.items()}
    cpu_ratio = cpu["cluster"]["total"] / cpu["single"]["total"]
    one_client_p50 = {name: one.p(50) for name, one in latency.items()}
    one, many = cpu["single"], cpu["cluster"]

    def summed(prefix: str) -> str:
        """The cluster's groups named prefix1, prefix2...: `a + b = sum ms`."""
        values = [value for name, value in many.items() if name.startswith(prefix)]
        return f"{' + '.join(f'{v:.2f}' for v in values)} = {sum(values):.2f} ms" if values else "none"

    def pair(single_group: str, cluster_group: str) -> str:
        return f"{one[single_group]:.2f} / {many[cluster_group]:.2f} ms"

    throughput_ratio = cluster_load.throughput / single_load.throughput
    p99_ratio = cluster_load.p(99) / single_load.p(99)
    throughputs = f"{single_load.throughput:.0f} / {cluster_load.throughput:.0f} req/s"
    per_node = ", ".join(f"{node}: {count}" for node, count in sorted(per_worker.items()))
    moved = f"move of a tenant of {move_rows:,} rows ({move.source} -> {move.target})"
    table = [
        ["throughput one server / cluster", throughputs, ""],
        ["throughput cluster / one server", f"{throughput_ratio:.2f}", ">= 0.8"],
        ["p50 one server / cluster", f"{ms(single_load.p(50))} / {ms(cluster_load.p(50))}", ""],
        ["p99 one server / cluster", f"{ms(single_load.p(99))} / {ms(cluster_load.p(99))}", ""],
        ["p99 cluster / one server", f"{p99_ratio:.2f}", "reported"],
        ["read errors (both)", str(single_load.errors + cluster_load.errors), "0"],
        ["CPU per request, API (gunicorn): one server / cluster", pair("api", "api"), "reported"],
        ["CPU per request, load generator: one server / cluster", pair("load", "load"), "reported"],
        ["CPU per request, PostgreSQL: one server / the coordinator (the hop)",
         pair("postgres", "coordinator"), "reported"],
        ["CPU per request, the cluster's workers", summed("worker"), "reported"],
        ["CPU per request, the cluster's PgBouncers", summed("pgbouncer"), "reported"],
        ["CPU per request, total: one server / cluster", pair("total", "total"), "reported"],
        ["CPU per request cluster / one server (its inverse: the throughput ratio if CPU-bound)",
         f"{cpu_ratio:.2f} ({1 / cpu_ratio:.2f})", "reported"],
        ["database processes that ended during the read passes: one server / cluster",
         f"{passes['single'].exited} / {passes['cluster'].exited}", "reported"],
        ["p50 at 1 client: one server / cluster",
         f"{ms(one_client_p50['single'])} / {ms(one_client_p50['cluster'])}", "reported"],
        ["client connections on the busiest worker after the passes", str(connections), "reported"],
        ["tenants per worker", per_node, ""],
        ["placement spread (largest distance from even)", f"{placement_spread:.3f}", "<= 0.1"],
        [moved, f"{move.seconds:.2f} s", "reported"],
        ["longest write to it during the move (write-blocked window)", f"{move.blocked_s:.3f} s", "reported"],
        ["writes acknowledged during the run / lost / duplicated / in the wrong tenant",
         f"{move.acknowledged} / {move.lost} / {move.duplicated} / {move.foreign}", "lost 0"],
        ["failed writes (status: count)", json.dumps(dict(move.failures)) or "{}", "503 only"],
    ]  # fmt: skip
    notes = [
        f"{n} tenants with {args.clients} clients each on each setup, provisioned in "
        f"{single_provision_s:.0f} s (one server) and {cluster_provision_s:.0f} s (cluster: the "
        "migration chain, statement by statement, docs/scale-out.md).",
        f"Reads: GET /api/v1/clients, {requests} requests per pass, {rounds} round(s) alternating the "
        f"setups after {WARM_UP_PER_TENANT} warm-up requests per tenant; gunicorn {args.workers} workers "
        f"x {args.threads} threads each; load {args.load_processes} processes x {args.connections} "
        "connections.",
        "Everything (3 Citus nodes, the single server, 2 gunicorns, the load) shares one 2-core machine: "
        "the cluster's workers add no hardware here, so the ratio is the hop's cost, not scale-out's gain.",
        (
            "Worker connections: the coordinator reaches each worker through a PgBouncer in front of it "
            "(transaction pooling, pg_dist_poolinfo) and keeps its connections; the busiest worker's "
            "client backends are PgBouncer's server connections, one per recently active tenant role, "
            f"capped at {citus_cluster.POOLER_SERVER_CONNECTIONS}."
            if pooled
            else "Worker connections: no pooler (CITUS_POOLERS=0 or PgBouncer not installed): the "
            "coordinator keeps no worker connection, each tenant transaction starts a worker backend."
        ),
        "CPU per request: user + system time of each process tree (psutil) over each setup's read "
        "passes, divided by their requests; a tree's time includes the children its root reaped, so "
        "PostgreSQL backends that ended during a pass count through their postmaster. The load "
        "generator's processes report their own (start-up included). Not counted: the bench's own "
        "process, which only waits during the passes. CPU time per request depends less than "
        "throughput on the shared machine's other load, but still rises with it. 1 client: "
        f"{one_client_requests} GETs per setup on one keep-alive connection after the passes.",
        f"Move: `tenants move --mode auto`, which Citus ran as {move_mode}"
        + (" (PgBouncer 1.18 refuses the replication connection of a logical move)" if pooled else "")
        + f"; {args.writers} writer threads on the moving tenant and 1 on another, POSTs on keep-alive "
        "connections; write-blocked window = the longest write overlapping the move.",
    ]
    return Report(
        headers=["figure", "value", "target"],
        rows=table,
        settings={
            "tenants": n,
            "clients": args.clients,
            "requests": requests,
            "rounds": rounds,
            "move_rows": move_rows,
            "writers": args.writers,
            "poolers": pooled,
            "workers": args.workers,
            "threads": args.threads,
        },
        server=server_version,
        notes=notes,
        figures={
            "throughput_cluster_over_single": throughput_ratio,
            "p99_cluster_over_single": p99_ratio,
            "placement_spread": placement_spread,
            "lost_writes": move.lost,
            "duplicated_writes": move.duplicated,
            "write_blocked_s": move.blocked_s,
            "move_seconds": move.seconds,
            "read_errors": single_load.errors + cluster_load.errors,
            "worker_connections": connections,
            "cpu_ms_single": one["total"],
            "cpu_ms_cluster": many["total"],
            "cpu_cluster_over_single": cpu_ratio,
            "cpu_ms_coordinator": many["coordinator"],
            **{
                f"cpu_ms_{setup}_{group}": value
                for setup in cpu
                for group, value in cpu[setup].items()
                if group != "total"
            },
            "database_processes_exited": passes["single"].exited + passes["cluster"].exited,
            "p50_one_client_ms_single": 1000 * one_client_p50["single"],
            "p50_one_client_ms_cluster": 1000 * one_client_p50["cluster"],
        },
    )
