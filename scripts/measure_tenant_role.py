#!/usr/bin/env python3
"""Micro-measurement: what does assuming the tenant role cost a tenant transaction?

Runs, interleaved in one process against a throwaway embedded PostgreSQL, N transactions of
  A: set_config('search_path') only, then a page of clients (the runtime role is given direct
     access to this one schema for the comparison), and
  B: the real scope statement (`core.db.set_tenant_search_path`: search path + tenant role),
     then the same page,
and prints the per-transaction medians and the ratio B/A. Nothing here is a pass/fail test:
speed is compared only as a ratio within one run (docs/security-database.md).

    .venv/bin/python scripts/measure_tenant_role.py [iterations]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, text

from backend import create_app
from backend.cli.owner import owner_engine
from backend.cli.tenants import migrate_shared
from backend.core.config import Settings
from backend.core.db import set_tenant_search_path
from backend.core.tenancy import quoted_schema
from backend.infrastructure import embedded_postgres
from backend.infrastructure.sql.clients import clients
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service.tenants import provision_tenant

PAGE = text("SELECT id, name FROM clients ORDER BY name LIMIT 20")
BLOCK = 5  # transactions per block; the variants alternate block by block (order flipped)


def search_path_only(connection, schema_name: str) -> None:
    connection.execute(
        text("SELECT set_config('search_path', :path, true)"), {"path": quoted_schema(schema_name)}
    )


def run_block(engine, scope, schema_name: str) -> list[float]:
    durations = []
    for _ in range(BLOCK):
        start = time.perf_counter()
        with engine.begin() as connection:
            scope(connection, schema_name)
            connection.execute(PAGE).all()
        durations.append(time.perf_counter() - start)
    return durations


def main(iterations: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="measure-role-"))
    database = embedded_postgres.start(workdir / "pgdata", cleanup="delete")
    settings = Settings(
        env="test",
        database_url=database.runtime_url,
        migration_database_url=database.owner_url,
        var_dir=workdir / "var",
        pool_size=1,
    )
    app = create_app(settings)
    runtime = app.extensions["saas"]
    owner = owner_engine(app)  # the commands' owner role (the API's Runtime holds none)
    with app.app_context():
        migrate_shared()
    tenant = provision_tenant(
        slug="measure",
        name="Measure",
        owner_email="owner@example.com",
        trial_days=14,
        now=datetime.now(UTC),
        uow=SqlRegistryUnitOfWork(owner, runtime.runtime_role),
    )
    schema = quoted_schema(tenant.schema_name)
    with owner.begin() as connection:
        set_tenant_search_path(connection, tenant.schema_name)
        connection.execute(insert(clients), [{"id": uuid.uuid4(), "name": f"Client {i}"} for i in range(20)])
        # Only for variant A: the access the runtime role had before tenant roles.
        connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {runtime.runtime_role}")
        connection.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {runtime.runtime_role}")

    variants = {"search path only": search_path_only, "search path + role": set_tenant_search_path}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    run_block(runtime.engine, set_tenant_search_path, tenant.schema_name)  # warm-up
    for block in range(max(1, iterations // BLOCK)):
        order = list(variants) if block % 2 == 0 else list(reversed(variants))
        for name in order:
            samples[name] += run_block(runtime.engine, variants[name], tenant.schema_name)

    medians = {name: statistics.median(values) * 1e6 for name, values in samples.items()}
    for name, value in medians.items():
        print(f"{name:<20} {len(samples[name]):>6} transactions  median {value:8.1f} us")
    ratio = medians["search path + role"] / medians["search path only"]
    print(f"ratio (with role / without) {ratio:.3f}")
    runtime.engine.dispose()
    owner.dispose()
    database.server.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
