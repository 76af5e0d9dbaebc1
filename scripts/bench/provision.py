"""provision: tenants created one after another while the fleet grows to N, fast path vs the
Alembic chain in the same run, and POST /api/v1/auth/signup end to end.

The fast path applies the cached head script (backend/infrastructure/ddl_cache.py); the
chain runs the migrations for each new schema, as the project's fallback does (parsed
revision files kept per process) and as `alembic.command.upgrade` does (re-read per call).
Both are sampled alternately, at the start and at the end, so they share the noise of the
moment. Every provision is the real `provision_tenant`: registry row, user, membership,
audit event and schema in one transaction.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from alembic import command

from backend.infrastructure import ddl_cache, migrations
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.infrastructure.sql.unit_of_work import RegistryUnitOfWork
from backend.service.tenants import provision_tenant
from bench.common import BenchDatabase, Report, ms, percentile, profiled

SIGNUP_ROUTE = "/api/v1/auth/signup"
WARM_UP = 3  # provisions per path before the first timed window


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenants", type=int, default=2000, help="fleet size reached (N)")
    parser.add_argument(
        "--sample", type=int, default=25, help="provisions of each path at the start and at the end"
    )
    parser.add_argument("--signups", type=int, default=30, help="signups timed at the end")


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
    its schema step (`SqlSchemaManager.create`, the part the fast path replaces)."""

    PATHS = ("fast", "chain", "stock")

    def __init__(self, db: BenchDatabase) -> None:
        self.runtime = db.runtime
        self.size = 0
        self._last_step = 0.0

    @contextmanager
    def timing_schema_step(self) -> Iterator[None]:
        original = SqlSchemaManager.create

        def timed(manager: SqlSchemaManager, schema_name: str) -> str:
            started = time.perf_counter()
            try:
                return original(manager, schema_name)
            finally:
                self._last_step = time.perf_counter() - started

        SqlSchemaManager.create = timed
        try:
            yield
        finally:
            SqlSchemaManager.create = original

    def provision(self, path: str) -> tuple[float, float]:
        """Provision one tenant by `path`; return the seconds of the whole and of the schema step."""
        slug = f"bench-{self.size:06d}"
        uow = RegistryUnitOfWork(
            self.runtime.owner_engine, self.runtime.runtime_role, fast_provisioning=path == "fast"
        )
        started = time.perf_counter()
        with stock_alembic() if path == "stock" else _nothing():
            provision_tenant(
                slug=slug,
                name=f"Bench {slug}",
                owner_email=f"{slug}@bench.example.com",
                trial_days=14,
                now=datetime.now(UTC),
                uow=uow,
            )
        self.size += 1
        return time.perf_counter() - started, self._last_step

    def alternate(self, sample: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """`sample` provisions by each path, interleaved: (whole, schema step) per path."""
        whole: dict[str, list[float]] = {path: [] for path in self.PATHS}
        step: dict[str, list[float]] = {path: [] for path in self.PATHS}
        for _ in range(sample):
            for path in self.PATHS:
                total, schema = self.provision(path)
                whole[path].append(total)
                step[path].append(schema)
        return whole, step


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def time_signups(db: BenchDatabase, count: int) -> tuple[list[float], str | None]:
    """Seconds per signup through the Flask stack (test client, in process), or why not."""
    if not any(rule.rule == SIGNUP_ROUTE for rule in db.app.url_map.iter_rules()):
        return [], f"`POST {SIGNUP_ROUTE}` does not exist in this build: signup not timed"
    client = db.app.test_client()
    times = []
    for _ in range(count):
        tag = uuid.uuid4().hex[:10]
        body = {
            "email": f"signup-{tag}@bench.example.com",
            "password": f"correct horse battery {tag}",
            "name": "Bench Worker",
            "workspace_name": f"Bench {tag}",
            "workspace_slug": f"signup-{tag}",
        }
        started = time.perf_counter()
        response = client.post(SIGNUP_ROUTE, json=body)
        times.append(time.perf_counter() - started)
        if response.status_code != 201:
            return [], f"signup answered {response.status_code} {response.get_data(as_text=True)[:200]}"
    return times, None


def run(args: argparse.Namespace) -> Report:
    n = 30 if args.quick else args.tenants
    sample = 3 if args.quick else args.sample
    signups = 2 if args.quick else args.signups
    with BenchDatabase() as db:
        fleet = Fleet(db)
        started = time.perf_counter()
        ddl_cache.head_script(db.runtime.owner_engine, db.runtime.runtime_role)
        generation = time.perf_counter() - started
        with fleet.timing_schema_step():
            fleet.alternate(WARM_UP)  # first statements of a fresh server and process: not timed
            start_from = fleet.size
            start, start_step = fleet.alternate(sample)
            start_size = fleet.size
            growth = []
            with profiled(args, "provision-fast"):
                while fleet.size < n - len(Fleet.PATHS) * sample:
                    growth.append(fleet.provision("fast")[0])
            end_from = fleet.size
            end, end_step = fleet.alternate(sample)
        signup_times, signup_note = time_signups(db, signups)
        server = db.server_version()

    fast_all = start["fast"] + growth + end["fast"]
    p95_start, p95_end = percentile(start["fast"], 95), percentile(end["fast"], 95)
    rows = [
        ["fast path p50, all provisions", ms(percentile(fast_all, 50)), "< 25 ms"],
        ["fast path p95, all provisions", ms(percentile(fast_all, 95)), ""],
        [f"fast path p95 at start (fleet {start_from + 1}-{start_size})", ms(p95_start), ""],
        [f"fast path p95 at end (fleet {end_from + 1}-{fleet.size})", ms(p95_end), ""],
        ["p95 end / p95 start", f"{p95_end / p95_start:.2f}", "<= 1.5"],
    ]
    for label, whole, step in (("start", start, start_step), ("end", end, end_step)):
        rows += [
            [f"whole provisioning p50, fast / chain / stock, at {label}", p50s(whole), ""],
            [f"chain / fast (p50), whole provisioning, at {label}", ratio(whole, "chain"), ">= 5x"],
            [f"schema step p50, fast / chain / stock, at {label}", p50s(step), ""],
            [f"chain / fast (p50), schema step only, at {label}", ratio(step, "chain"), ""],
        ]
    rows.append(["head script generation (once per process)", ms(generation), ""])
    notes = [
        f"{len(fast_all)} timed fast and {2 * 2 * sample} chain provisions (after {WARM_UP} untimed of "
        f"each path); the fleet reached {fleet.size} tenants.",
        "whole provisioning = `provision_tenant` (owner, schema, registry row, membership, audit, commit); "
        "schema step = `SqlSchemaManager.create`, the part the fast path replaces.",
        "chain = the migration chain with the revision files parsed once per process (the fallback); "
        "stock = `alembic.command.upgrade` with alembic.ini, as before the fast path.",
    ]
    if signup_times:
        rows.append(
            [
                f"POST {SIGNUP_ROUTE} p50 / p95 ({len(signup_times)}, in-process test client)",
                p50_p95(signup_times),
                "p95 < 300 ms",
            ]
        )
    else:
        notes.append(signup_note)
    return Report(
        headers=["figure", "value", "target"],
        rows=rows,
        settings={"tenants": n, "sample": sample, "signups": signups},
        server=server,
        notes=notes,
    )


def ratio(times: dict[str, list[float]], path: str) -> str:
    return f"{percentile(times[path], 50) / percentile(times['fast'], 50):.1f}x"


def p50s(times: dict[str, list[float]]) -> str:
    return " / ".join(ms(percentile(times[path], 50)) for path in Fleet.PATHS)


def p50_p95(times: list[float]) -> str:
    return f"{ms(percentile(times, 50))} / {ms(percentile(times, 95))}"
