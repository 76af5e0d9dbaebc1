"""provision: tenants created one after another while the fleet grows to N: from a spare
schema, by the head script, by the Alembic chain, side by side; and POST /api/v1/auth/signup
end to end through gunicorn, with and without the pool of spares.

Four ways to get the schema, every one inside the real `provision_tenant` (owner, registry
row, membership, audit event and schema in one transaction):
- spare: claims a spare schema built ahead of time (backend/infrastructure/spares.py); the
  pool is refilled after each such provision, outside the timed section, and that refill is
  timed on its own: it is the cost the spare path moves out of the request;
- script: applies the cached head script (backend/infrastructure/ddl_cache.py), no pool;
- chain: runs the migrations with the parsed revision files kept per process (the fallback);
- stock: `alembic.command.upgrade` with alembic.ini, as before any of this.
They are sampled alternately at the start and at the end, so they share the noise of the
moment; in between the fleet grows by the spare path. The spare path, whose p95 at the end
against the start is a target, is sampled more often (`--spare-sample`, 100 per window: a p95
of 25 values is their second largest, a p95 of 100 their fifth), and its CPU time (this
process's and, on the embedded server, its backend's) is reported next to its wall time:
when the wall time's tail grows and the CPU time's does not, the provisions waited for a core.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace

from alembic import command
from sqlalchemy import event

from backend.core.passwords import hash_password
from backend.infrastructure import ddl_cache, migrations
from backend.infrastructure.spares import SparePool
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.infrastructure.sql.unit_of_work import RegistryUnitOfWork
from backend.service.tenants import provision_tenant
from bench.common import BenchDatabase, Report, ms, percentile, profiled
from bench.serving import gunicorn

SIGNUP_ROUTE = "/api/v1/auth/signup"
WARM_UP = 3  # provisions per path before the first timed window
POOL_SIZE = 5  # SPARE_SCHEMAS's default
POOL_WAIT_S = 120
# `bench.py all` (make bench, < 15 minutes on 2 cores) grows the fleet to 1,000 only.
ALL_ARGS = ["--tenants", "1000"]
RELAXED_LIMITS = {
    "RATE_LIMIT_SIGNUP_IP": "100000 per minute",
    "RATE_LIMIT_SIGNUP_ACCOUNT": "100000 per minute",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenants", type=int, default=2000, help="fleet size reached (N)")
    parser.add_argument(
        "--sample", type=int, default=25, help="provisions of each path at the start and at the end"
    )
    parser.add_argument(
        "--spare-sample",
        type=int,
        default=100,
        help="spare-path provisions at the start and at the end (interleaved with the --sample rounds)",
    )
    parser.add_argument("--signups", type=int, default=30, help="signups timed per server at the end")


@contextmanager
def stock_alembic() -> Iterator[None]:
    """Run upgrades as the project did before: `alembic.command.upgrade` with a configuration
    read from alembic.ini, which re-reads the revision files for every schema."""
    original = migrations._upgrade

    def stock(config, tree: str, revision: str) -> None:
        full = migrations.alembic_config(tree)
        full.attributes.update(config.attributes)
        command.upgrade(full, revision)

    migrations._upgrade = stock
    try:
        yield
    finally:
        migrations._upgrade = original


class Fleet:
    """Provisions tenants and keeps, per path, the seconds of the whole provisioning and of
    its schema step (`SqlSchemaManager.claim_spare` plus `create`: what the paths replace),
    the CPU seconds of each spare-path provision, and the seconds of each refill that built
    one spare."""

    PATHS = ("spare", "script", "chain", "stock")

    def __init__(self, db: BenchDatabase) -> None:
        self.runtime = db.runtime
        self.pool = SparePool(db.runtime.owner_engine, db.runtime.runtime_role, POOL_SIZE)
        self.size = 0
        self.refills: list[float] = []
        self.spare_misses = 0  # spare-path provisions that found no spare (should be none)
        self.spare_cpu: list[float] = []  # of the last window's spare-path provisions
        self._step = 0.0
        self._claimed = False
        self._server_cpu = BackendCpu(db.runtime.owner_engine) if db.embedded else None

    @contextmanager
    def timing_schema_step(self) -> Iterator[None]:
        claim, create = SqlSchemaManager.claim_spare, SqlSchemaManager.create

        def timed_claim(manager: SqlSchemaManager):
            started = time.perf_counter()
            try:
                spare = claim(manager)
                self._claimed = spare is not None
                return spare
            finally:
                self._step += time.perf_counter() - started

        def timed_create(manager: SqlSchemaManager, schema_name: str) -> str:
            started = time.perf_counter()
            try:
                return create(manager, schema_name)
            finally:
                self._step += time.perf_counter() - started

        SqlSchemaManager.claim_spare, SqlSchemaManager.create = timed_claim, timed_create
        try:
            yield
        finally:
            SqlSchemaManager.claim_spare, SqlSchemaManager.create = claim, create

    def provision(self, path: str) -> tuple[float, float]:
        """Provision one tenant by `path`; return the seconds of the whole and of the schema
        step. After a spare-path provision the pool is refilled (timed apart)."""
        slug = f"bench-{self.size:06d}"
        uow = RegistryUnitOfWork(
            self.runtime.owner_engine,
            self.runtime.runtime_role,
            fast_provisioning=path in ("spare", "script"),
            spares=path == "spare",
        )
        self._step, self._claimed = 0.0, False
        server_before = self._server_cpu.seconds() if self._server_cpu else 0.0
        with stock_alembic() if path == "stock" else ExitStack():
            cpu_started = time.thread_time()
            started = time.perf_counter()
            provision_tenant(
                slug=slug,
                name=f"Bench {slug}",
                owner_email=f"{slug}@bench.example.com",
                trial_days=14,
                now=datetime.now(UTC),
                uow=uow,
            )
            whole = time.perf_counter() - started
            cpu = time.thread_time() - cpu_started
        self.size += 1
        step = self._step
        if path == "spare":
            if self._server_cpu:
                cpu += self._server_cpu.seconds() - server_before
            self.spare_cpu.append(cpu)
            self.spare_misses += not self._claimed
            self.refill()
        return whole, step

    def refill(self) -> None:
        result = self.pool.refill()
        if result.built == 1:
            self.refills.append(result.seconds)

    def alternate(
        self, sample: int, spare_sample: int
    ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """`sample` rounds, each a share of the `spare_sample` spare-path provisions and one
        provision by each other path: (whole, schema step) per path. `spare_cpu` then holds
        the CPU seconds of this window's spare-path provisions."""
        whole: dict[str, list[float]] = {path: [] for path in self.PATHS}
        step: dict[str, list[float]] = {path: [] for path in self.PATHS}
        self.spare_cpu = []
        for round_ in range(sample):
            spares = (round_ + 1) * spare_sample // sample - round_ * spare_sample // sample
            for path in ["spare"] * spares + [p for p in self.PATHS if p != "spare"]:
                total, schema = self.provision(path)
                whole[path].append(total)
                step[path].append(schema)
        return whole, step


class BackendCpu:
    """CPU seconds used so far by the server backends of an engine's connections (Linux
    /proc schedstat, nanoseconds: the server must be on this machine). Read before and after
    a provision, the difference is its server side: the other connections are idle meanwhile."""

    def __init__(self, engine) -> None:
        self._pids: set[int] = set()

        @event.listens_for(engine, "connect")
        def _note_backend(dbapi_connection, connection_record) -> None:
            self._pids.add(dbapi_connection.info.backend_pid)

        engine.dispose()  # so that every connection from now on is noted

    def seconds(self) -> float:
        total = 0
        for pid in list(self._pids):
            try:
                with open(f"/proc/{pid}/schedstat") as stats:
                    total += int(stats.read().split()[0])
            except OSError:  # that connection has ended
                self._pids.discard(pid)
        return total / 1e9


def post_signup(port: int) -> float:
    """One signup over HTTP, from the request to the last byte of the answer."""
    tag = uuid.uuid4().hex[:12]
    body = json.dumps(
        {
            "email": f"signup-{tag}@bench.example.com",
            "password": f"correct horse battery {tag}",
            "name": "Bench Worker",
            "workspace_name": f"Bench {tag}",
            "workspace_slug": f"signup-{tag}",
        }
    )
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    connection.request("POST", SIGNUP_ROUTE, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status != 201:
        raise SystemExit(f"signup answered {response.status}: {answer[:200]!r}")
    return elapsed


def wait_for_pool(pool: SparePool) -> None:
    deadline = time.monotonic() + POOL_WAIT_S
    while pool.status().at_head < pool.size:
        if time.monotonic() > deadline:
            raise SystemExit("the web process did not refill the pool of spare schemas in time")
        time.sleep(0.02)


def time_signups(db: BenchDatabase, fleet: Fleet, count: int) -> dict[str, list[float]]:
    """Signups through gunicorn (1 worker, 4 threads) with the pool (SPARE_SCHEMAS=5: the
    worker refills it after each signup; the next one starts once it is full again) and
    without (SPARE_SCHEMAS=0), alternated; one untimed signup each first."""
    server_args = SimpleNamespace(workers=1, threads=4)
    times: dict[str, list[float]] = {"pool": [], "no pool": []}
    with (
        gunicorn(db, server_args, extra_env={**RELAXED_LIMITS, "SPARE_SCHEMAS": str(POOL_SIZE)}) as pooled,
        gunicorn(db, server_args, extra_env={**RELAXED_LIMITS, "SPARE_SCHEMAS": "0"}) as plain,
    ):
        servers = {"pool": pooled, "no pool": plain}
        for round_ in range(count + 1):
            for label, server in servers.items():
                if label == "pool":
                    wait_for_pool(fleet.pool)
                seconds = post_signup(server.port)
                if round_:
                    times[label].append(seconds)
    return times


def run(args: argparse.Namespace) -> Report:
    n = 40 if args.quick else args.tenants
    sample = 3 if args.quick else args.sample
    spare_sample = 6 if args.quick else max(args.spare_sample, sample)
    signups = 2 if args.quick else args.signups
    with BenchDatabase() as db:
        logging.getLogger("backend").setLevel(logging.WARNING)  # a refill logs a line each
        fleet = Fleet(db)
        started = time.perf_counter()
        ddl_cache.head_script(db.runtime.owner_engine, db.runtime.runtime_role)
        generation = time.perf_counter() - started
        fleet.pool.refill()
        with fleet.timing_schema_step():
            fleet.alternate(WARM_UP, WARM_UP)  # a fresh server's and process's first statements
            start_from = fleet.size
            start, start_step = fleet.alternate(sample, spare_sample)
            start_size, start_cpu = fleet.size, fleet.spare_cpu
            growth = []
            window = (len(Fleet.PATHS) - 1) * sample + spare_sample
            with profiled(args, "provision-spare"):
                while fleet.size < n - window:
                    growth.append(fleet.provision("spare")[0])
            end_from = fleet.size
            end, end_step = fleet.alternate(sample, spare_sample)
            end_cpu = fleet.spare_cpu
        signup_times = time_signups(db, fleet, signups)
        hashes = [timed(hash_password, "correct horse battery staple") for _ in range(10)]
        server = db.server_version()

    spare_all = start["spare"] + growth + end["spare"]
    p95_start, p95_end = percentile(start["spare"], 95), percentile(end["spare"], 95)
    cpu_start, cpu_end = percentile(start_cpu, 95), percentile(end_cpu, 95)
    cpu_of = "this process + its server backend" if db.embedded else "this process only"
    rows = [
        ["spare path p50, all provisions", ms(percentile(spare_all, 50)), "< 25 ms"],
        ["spare path p95, all provisions", ms(percentile(spare_all, 95)), ""],
        [f"spare path p95 at start (fleet {start_from + 1}-{start_size})", ms(p95_start), ""],
        [f"spare path p95 at end (fleet {end_from + 1}-{fleet.size})", ms(p95_end), ""],
        ["p95 end / p95 start", f"{p95_end / p95_start:.2f}", "<= 1.5"],
        [f"spare path CPU ({cpu_of}) p50 / p95 at start", p50_p95(start_cpu), ""],
        [f"spare path CPU ({cpu_of}) p50 / p95 at end", p50_p95(end_cpu), ""],
        ["CPU p95 end / CPU p95 start", f"{cpu_end / cpu_start:.2f}", "reported"],
    ]
    for label, whole, step in (("start", start, start_step), ("end", end, end_step)):
        rows += [
            [f"whole provisioning p50, {' / '.join(Fleet.PATHS)}, at {label}", p50s(whole), ""],
            [f"chain / spare (p50), whole provisioning, at {label}", ratio(whole, "chain"), ">= 5x"],
            [f"script / spare (p50), whole provisioning, at {label}", ratio(whole, "script"), ""],
            [f"schema step p50, {' / '.join(Fleet.PATHS)}, at {label}", p50s(step), ""],
        ]
    rows += [
        ["refill: one spare built, p50 / p95 (outside the request)", p50_p95(fleet.refills), "reported"],
        ["head script generation (once per process)", ms(generation), ""],
        [
            f"POST {SIGNUP_ROUTE} p50 / p95, pool ({len(signup_times['pool'])}, gunicorn)",
            p50_p95(signup_times["pool"]),
            "p95 < 300 ms",
        ],
        [
            f"POST {SIGNUP_ROUTE} p50 / p95, no pool ({len(signup_times['no pool'])}, gunicorn)",
            p50_p95(signup_times["no pool"]),
            "",
        ],
        ["argon2id hash of the password (in every signup), p50", ms(percentile(hashes, 50)), ""],
    ]
    notes = [
        f"{len(spare_all)} timed spare-path provisions ({spare_sample} in each window) and "
        f"{2 * sample} of each other path (after {WARM_UP} untimed of each); the fleet reached "
        f"{fleet.size} tenants; {fleet.spare_misses} spare-path provisions found no spare.",
        "CPU: the provisioning thread's CPU time plus the server backends' (/proc schedstat) "
        "during a spare-path provision; wall time minus CPU time is waiting, mostly for a core "
        "on a shared machine: a tail that grows in wall time but not in CPU time is not work "
        "that grows with the fleet.",
        "whole provisioning = `provision_tenant` (owner, schema, registry row, membership, audit, commit); "
        "schema step = `SqlSchemaManager.claim_spare` + `create`, the part the paths differ in.",
        f"spare: pool of {POOL_SIZE}, refilled after every spare-path provision outside the timed "
        "section; refill = one transaction per spare: head script, tenant role and grants, pool row "
        f"({len(fleet.refills)} refills timed).",
        "chain = the migration chain with the revision files parsed once per process (the fallback); "
        "stock = `alembic.command.upgrade` with alembic.ini, as before the fast path.",
        "signup: HTTP over loopback to gunicorn (1 worker, 4 threads) from this process, one at a time, "
        "alternating a server with SPARE_SCHEMAS=5 (the worker refills the pool after each signup; the "
        "next starts once it is full) and one with SPARE_SCHEMAS=0; rate limits relaxed. It includes the "
        "argon2id hash, provisioning, the verification token and audit (second transaction), the mail file.",
    ]
    return Report(
        headers=["figure", "value", "target"],
        rows=rows,
        settings={
            "tenants": n,
            "sample": sample,
            "spare_sample": spare_sample,
            "signups": signups,
            "pool": POOL_SIZE,
        },
        server=server,
        notes=notes,
    )


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def ratio(times: dict[str, list[float]], path: str) -> str:
    return f"{percentile(times[path], 50) / percentile(times['spare'], 50):.1f}x"


def p50s(times: dict[str, list[float]]) -> str:
    return " / ".join(ms(percentile(times[path], 50)) for path in Fleet.PATHS)


def p50_p95(times: list[float]) -> str:
    return f"{ms(percentile(times, 50))} / {ms(percentile(times, 95))}"
