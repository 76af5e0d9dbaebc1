"""provision: creating tenants one after another while the fleet grows to N, and
POST /api/v1/auth/signup end to end through gunicorn (the API's app, runtime role only) with the
job worker beside it, with a warm and an empty pool of spares.

Two different things are measured and reported apart:
- **creation**: the full cost of a new tenant, schema + tenant role + grants + registry row,
  owner, membership and audit in one transaction (`provision_tenant` with the head script, the
  tenant tree's SQL from base to head rendered by Alembic's offline mode (step_scripts.py),
  no spare). The fleet grows by this path, so its sustained rate is tenants created per
  second; it is sampled at the start and at the end (p50/p95, wall and CPU), side by side
  with the Alembic chain (the same transaction building the schema by running the migrations).
- **claim**: what a signup pays when a spare schema, built ahead of time, is ready
  (backend/infrastructure/spares.py): no schema is created in it. Reported, and the signup
  figures through gunicorn are the latency a user sees: with a spare ready (201), and with
  none (503 at once; the worker builds one; the signup sent again then gets 201).
Paths are sampled alternately in each window so they share the noise of the moment. CPU time
is this process's thread plus, on the embedded server, its backend's: when the wall time's tail
grows and the CPU time's does not, the provisions waited for a core.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace

from sqlalchemy import event

from backend.core.config import PROJECT_ROOT
from backend.core.passwords import hash_password
from backend.infrastructure import migrations, step_scripts
from backend.infrastructure.spares import SparePool
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service.tenants import provision_tenant
from bench.common import BenchDatabase, Report, ms, percentile, profiled
from bench.serving import BIN, gunicorn

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


class Fleet:
    """Provisions tenants and keeps, per path, the seconds of each whole provisioning and the
    CPU seconds of each; and the seconds of each refill that built one spare."""

    PATHS = ("script", "chain", "spare")  # creation by the head script, by the chain; claim

    def __init__(self, db: BenchDatabase) -> None:
        self.runtime = db.runtime
        self.owner_engine = db.owner_engine
        self.pool = SparePool(db.owner_engine, db.runtime.runtime_role, POOL_SIZE)
        self.size = 0
        self.refills: list[float] = []
        self.spare_misses = 0  # spare-path provisions that found no spare (should be none)
        self._claimed = False
        self._server_cpu = BackendCpu(db.owner_engine) if db.embedded else None

    @contextmanager
    def noting_claims(self) -> Iterator[None]:
        """Whether each spare-path provision found a spare (a miss would be a creation)."""
        claim = SqlSchemaManager.claim_spare

        def noted(manager: SqlSchemaManager):
            spare = claim(manager)
            self._claimed = spare is not None
            return spare

        SqlSchemaManager.claim_spare = noted
        try:
            yield
        finally:
            SqlSchemaManager.claim_spare = claim

    def provision(self, path: str) -> tuple[float, float]:
        """Provision one tenant by `path`; return its wall and CPU seconds. After a spare-path
        provision the pool is refilled (timed apart: a creation that happens elsewhere)."""
        slug = f"bench-{self.size:06d}"
        uow = SqlRegistryUnitOfWork(
            self.owner_engine,
            self.runtime.runtime_role,
            fast_provisioning=path in ("spare", "script"),
            spares=path == "spare",
        )
        self._claimed = False
        server_before = self._server_cpu.seconds() if self._server_cpu else 0.0
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
        if self._server_cpu:
            cpu += self._server_cpu.seconds() - server_before
        self.size += 1
        if path == "spare":
            self.spare_misses += not self._claimed
            self.refill()
        return whole, cpu

    def refill(self) -> None:
        result = self.pool.refill()
        if result.built == 1:
            self.refills.append(result.seconds)

    def window(self, rounds: int, per_round: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """`rounds` rounds, each `per_round` creations by script and claims, and one creation
        by the chain: (wall, CPU) seconds per path."""
        wall: dict[str, list[float]] = {path: [] for path in self.PATHS}
        cpu: dict[str, list[float]] = {path: [] for path in self.PATHS}
        for _ in range(rounds):
            for path in ["script", "spare"] * per_round + ["chain"]:
                seconds, used = self.provision(path)
                wall[path].append(seconds)
                cpu[path].append(used)
        return wall, cpu


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


def signup_body() -> str:
    tag = uuid.uuid4().hex[:12]
    return json.dumps(
        {
            "email": f"signup-{tag}@bench.example.com",
            "password": f"correct horse battery {tag}",
            "name": "Bench Worker",
            "workspace_name": f"Bench {tag}",
            "workspace_slug": f"signup-{tag}",
        }
    )


def post_signup(port: int, body: str, expect: int = 201, also: int | None = None) -> float | None:
    """One signup over HTTP, from the request to the last byte of the answer; None when it
    answered `also` instead of `expect`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    connection.request("POST", SIGNUP_ROUTE, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status == also:
        return None
    if response.status != expect:
        raise SystemExit(f"signup answered {response.status}, not {expect}: {answer[:200]!r}")
    if expect == 503 and not response.getheader("Retry-After"):
        raise SystemExit("an empty pool's 503 came without Retry-After")
    return elapsed


def wait_for_pool(pool: SparePool, ready: int) -> float:
    """Until `ready` spares are ready (the worker builds them); the seconds it took."""
    started = time.perf_counter()
    deadline = time.monotonic() + POOL_WAIT_S
    while pool.status().at_head < ready:
        if time.monotonic() > deadline:
            raise SystemExit("the worker did not refill the pool of spare schemas in time")
        time.sleep(0.005)
    return time.perf_counter() - started


@contextmanager
def job_worker(db: BenchDatabase) -> Iterator[subprocess.Popen]:
    """`flask --app backend worker` against the bench database, as `make run` starts it: the
    owner URL, SPARE_SCHEMAS=5; it refills the pool when signups ask (and every minute)."""
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": db.settings.database_url,
        "MIGRATION_DATABASE_URL": db.settings.migration_database_url,
        "VAR_DIR": str(db.settings.var_dir),
        "SPARE_SCHEMAS": str(POOL_SIZE),
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [str(BIN / "flask"), "--app", "backend", "worker"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


EMPTY_POOL_TRIES = 5


def time_signups(db: BenchDatabase, fleet: Fleet, count: int) -> dict[str, list[float]]:
    """Signups through gunicorn serving the API's app (`backend:create_api()`: the runtime URL
    only; 1 worker, 4 threads; SPARE_SCHEMAS=5) with the job worker beside it, one untimed
    round first, then alternately:
    - warm: the pool full (the worker refilled it after the last signup): the signup claims a
      spare, 201;
    - empty: the pool emptied by the owner first: the signup answers 503 tenant_unavailable +
      Retry-After at once, having asked the worker for a refill; timed apart: that answer, the
      wait until the worker has a workspace ready, and the same signup sent again (201)."""
    server_args = SimpleNamespace(workers=1, threads=4)
    times: dict[str, list[float]] = {"warm": [], "empty 503": [], "empty ready": [], "empty retry": []}
    env = {**RELAXED_LIMITS, "SPARE_SCHEMAS": str(POOL_SIZE)}
    with gunicorn(db, server_args, extra_env=env, target="backend:create_api()") as server, job_worker(db):
        for round_ in range(count + 1):
            wait_for_pool(fleet.pool, POOL_SIZE)
            warm = post_signup(server.port, signup_body())
            refused = None
            for _ in range(EMPTY_POOL_TRIES):
                wait_for_pool(fleet.pool, POOL_SIZE)
                fleet.pool.refill(target=0, shrink=True)  # every spare dropped: an empty pool
                body = signup_body()
                # A refill the worker still had queued (or its periodic one) may have built a
                # spare between the drop and the signup: that signup is a warm one, not timed.
                refused = post_signup(server.port, body, expect=503, also=201)
                if refused is not None:
                    break
            if refused is None:
                raise SystemExit(f"the pool was never empty at a signup in {EMPTY_POOL_TRIES} tries")
            ready = wait_for_pool(fleet.pool, 1)
            retried = post_signup(server.port, body)
            if round_:
                for label, seconds in zip(times, (warm, refused, ready, retried), strict=True):
                    times[label].append(seconds)
    return times


def run(args: argparse.Namespace) -> Report:
    n = 60 if args.quick else args.tenants
    rounds = 3 if args.quick else args.sample
    per_round = 2 if args.quick else max(1, args.spare_sample // args.sample)
    signups = 2 if args.quick else args.signups
    with BenchDatabase() as db:
        logging.getLogger("backend").setLevel(logging.WARNING)  # a refill logs a line each
        fleet = Fleet(db)
        started = time.perf_counter()
        step_scripts.step_script(None, migrations.head_revision("tenant"))
        generation = time.perf_counter() - started
        fleet.pool.refill()
        with fleet.noting_claims():
            fleet.window(WARM_UP, 1)  # a fresh server's and process's first statements
            start_from = fleet.size
            start, start_cpu = fleet.window(rounds, per_round)
            start_size = fleet.size
            window = rounds * (2 * per_round + 1)
            growth_started, grown = time.perf_counter(), 0
            with profiled(args, "provision-creation"):
                while fleet.size < n - window:
                    fleet.provision("script")
                    grown += 1
            growth_seconds = time.perf_counter() - growth_started
            end_from = fleet.size
            end, end_cpu = fleet.window(rounds, per_round)
        signup_times = time_signups(db, fleet, signups)
        hashes = [timed(hash_password, "correct horse battery staple") for _ in range(10)]
        server = db.server_version()

    creation = start["script"] + end["script"]
    chain = start["chain"] + end["chain"]
    p95_start, p95_end = percentile(start["script"], 95), percentile(end["script"], 95)
    cpu_of = "this process + its server backend" if db.embedded else "this process only"
    figures = {
        "creation_p50_ms": percentile(creation, 50) * 1000,
        "creation_p95_ms": percentile(creation, 95) * 1000,
        "creation_vs_chain": percentile(chain, 50) / percentile(creation, 50),
        "creation_p95_end_over_start": p95_end / p95_start,
        "creation_cpu_p95_end_over_start": percentile(end_cpu["script"], 95)
        / percentile(start_cpu["script"], 95),
        "creation_per_second": grown / growth_seconds if grown else float("nan"),
        "claim_p50_ms": percentile(start["spare"] + end["spare"], 50) * 1000,
        "signup_p95_ms_warm": percentile(signup_times["warm"], 95) * 1000,
        "signup_p95_ms_empty": percentile(signup_times["empty 503"], 95) * 1000,
        "signup_empty_workspace_ready_p95_ms": percentile(signup_times["empty ready"], 95) * 1000,
        "signup_empty_retry_p95_ms": percentile(signup_times["empty retry"], 95) * 1000,
    }
    at_start, at_end = f"fleet {start_from + 1}-{start_size}", f"fleet {end_from + 1}-{fleet.size}"
    rows = [
        ["creation (schema + role + grants) p50, start and end", ms(percentile(creation, 50)), "< 25 ms"],
        [f"creation p50 / p95 at start ({at_start})", p50_p95(start["script"]), ""],
        [f"creation p50 / p95 at end ({at_end})", p50_p95(end["script"]), ""],
        ["creation p95 end / start", f"{figures['creation_p95_end_over_start']:.2f}", "<= 1.5"],
        [f"creation CPU ({cpu_of}) p50 / p95 at start", p50_p95(start_cpu["script"]), ""],
        [f"creation CPU ({cpu_of}) p50 / p95 at end", p50_p95(end_cpu["script"]), ""],
        ["creation CPU p95 end / start", f"{figures['creation_cpu_p95_end_over_start']:.2f}", "reported"],
        [
            f"sustained creation, fleet {start_size + 1}-{end_from}",
            f"{figures['creation_per_second']:.1f} tenants/s ({grown} in {growth_seconds:.1f} s)",
            "reported",
        ],
        ["Alembic chain p50 / p95 (start and end)", p50_p95(chain), ""],
        ["chain / creation (p50)", f"{figures['creation_vs_chain']:.1f}x", ">= 5x"],
        ["claim of a spare (no creation) p50 / p95", p50_p95(start["spare"] + end["spare"]), "reported"],
        ["refill: one spare built, p50 / p95 (outside the request)", p50_p95(fleet.refills), "reported"],
        ["head script rendering (once per process)", ms(generation), ""],
        [
            f"POST {SIGNUP_ROUTE} p50 / p95, warm pool: 201 ({len(signup_times['warm'])}, gunicorn)",
            p50_p95(signup_times["warm"]),
            "p95 < 300 ms",
        ],
        [
            f"POST {SIGNUP_ROUTE} p50 / p95, empty pool: 503 ({len(signup_times['empty 503'])})",
            p50_p95(signup_times["empty 503"]),
            "p95 < 300 ms",
        ],
        [
            "empty pool: the 503 to a workspace ready (the worker's refill), p50 / p95",
            p50_p95(signup_times["empty ready"]),
            "reported",
        ],
        [
            "empty pool: the same signup sent again once ready (201), p50 / p95",
            p50_p95(signup_times["empty retry"]),
            "reported",
        ],
        ["argon2id hash of the password (in every signup), p50", ms(percentile(hashes, 50)), ""],
    ]
    notes = [
        f"Each window: {rounds} rounds of {per_round} creations, {per_round} claims and 1 chain creation "
        f"(after {WARM_UP} untimed rounds); the fleet grew by creations to {fleet.size} tenants; "
        f"{fleet.spare_misses} claims found no spare.",
        "creation = `provision_tenant` building the schema by the head script in its transaction (schema, "
        "tenant role, grants, registry row, owner, membership, audit, commit): the full cost of a new "
        "tenant. "
        "chain = the same transaction running the tenant migrations instead of the script.",
        "claim = `provision_tenant` taking a spare schema built ahead of time: what a signup pays when one "
        f"is ready, not a creation (pool of {POOL_SIZE}, refilled outside the timed section: "
        f"{len(fleet.refills)} "
        "refills timed).",
        "CPU: the provisioning thread's CPU time plus the server backends' (/proc schedstat); wall minus CPU "
        "is waiting, mostly for a core on a shared machine.",
        "signup: HTTP over loopback to gunicorn serving backend:create_api() (runtime role only; 1 worker, "
        "4 threads) from this process, one at a time, with `flask --app backend worker` beside it "
        f"(SPARE_SCHEMAS={POOL_SIZE}); rate limits relaxed. Warm: the pool full, the signup claims a spare "
        "(argon2id hash, claim, registry row, membership, verification token, audit, mail). Empty: the pool "
        "emptied first; the signup answers 503 tenant_unavailable + Retry-After without writing anything "
        "(argon2id hash included: validation comes first) and asks the worker for a refill; a client that "
        "honours Retry-After (2 s) waits that long, the figures show how soon the worker had a workspace "
        "ready and what the signup sent again then cost.",
    ]
    return Report(
        headers=["figure", "value", "target"],
        rows=rows,
        settings={
            "tenants": n,
            "sample": rounds,
            "spare_sample": rounds * per_round,
            "signups": signups,
            "pool": POOL_SIZE,
        },
        server=server,
        notes=notes,
        figures=figures,
    )


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def p50_p95(times: list[float]) -> str:
    return f"{ms(percentile(times, 50))} / {ms(percentile(times, 95))}"
