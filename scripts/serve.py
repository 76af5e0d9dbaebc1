#!/usr/bin/env python3
"""`make run`: start the embedded PostgreSQL when DATABASE_URL is unset, migrate the shared
schema and every tenant (which also fills the pool of spare workspaces signups claim), then
serve the API with gunicorn on HOST:PORT (127.0.0.1:8000), as the runtime role only, and run
the job worker (`flask --app backend worker`, docs/jobs.md; the owner role: it keeps the pool
filled) beside it. Both stop together: on SIGTERM/SIGINT, or when either of them exits.

`make run-citus` (`--citus`): the same on a fresh local Citus cluster, a coordinator and two
workers (backend/infrastructure/citus_cluster.py), removed when the server stops."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backend.core.config import Settings
from backend.core.logging import configure_logging
from backend.core.tokens import load_signing_keys
from backend.infrastructure import citus_cluster, embedded_postgres

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


log = logging.getLogger("serve")


def main() -> int:
    configure_logging()  # JSON lines, like the server's own (docs/operations.md, "Logging")
    settings = Settings.from_env()
    env = dict(os.environ)
    database = cluster = None
    if "--citus" in sys.argv[1:]:
        if reason := citus_cluster.unavailable_reason():
            print(f"cannot start a Citus cluster: {reason}", file=sys.stderr)
            return 2
        cluster = citus_cluster.start(Path(tempfile.mkdtemp(prefix="citus-run-")))
        env.update(DATABASE_URL=cluster.runtime_url, MIGRATION_DATABASE_URL=cluster.owner_url, CITUS="1")
        log.info("Citus cluster started", extra={"coordinator_port": cluster.coordinator.port})
    elif not settings.database_url:
        # Held by this process: the server stops when `make run` stops.
        database = embedded_postgres.start(settings.var_dir / "pgdata")
        env["DATABASE_URL"] = database.runtime_url
        env["MIGRATION_DATABASE_URL"] = database.owner_url
        log.info("embedded PostgreSQL started", extra={"pgdata": str(settings.var_dir / "pgdata")})
    try:
        return serve(settings, env)
    finally:
        if cluster is not None:
            cluster.stop()
        del database  # the embedded server's atexit hook stops it


def serve(settings: Settings, env: dict) -> int:
    load_signing_keys(settings)  # create the development key once, before the workers start
    flask = [str(BIN / "flask"), "--app", "backend"]
    # The command prints its progress for a terminal; here each line becomes a JSON record.
    migrated = subprocess.run(
        [*flask, "tenants", "migrate"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    for line in (migrated.stdout + migrated.stderr).splitlines():
        if line.strip():
            log.info("migrate: %s", line.strip())
    if migrated.returncode != 0:
        log.error("migrate failed", extra={"exit_code": migrated.returncode})
        return migrated.returncode
    # The API gets the runtime URL only (`backend.create_api()` would ignore the owner's
    # anyway); the worker and `tenants migrate` hold the owner's (docs/operations.md).
    api_env = {name: value for name, value in env.items() if name != "MIGRATION_DATABASE_URL"}
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", str(ROOT / "backend/gunicorn_conf.py"), "backend:create_api()"],
        env=api_env,
        cwd=ROOT,
    )
    worker = subprocess.Popen([*flask, "worker"], env=env, cwd=ROOT)
    children = (server, worker)
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.terminate()
    codes = [child.wait() for child in children]
    clean = (0, -signal.SIGTERM, -signal.SIGINT)
    if stopping and all(code in clean for code in codes):
        return 0
    # One of them stopped on its own: a failure, even with status 0 (both are meant to run on).
    return next((abs(code) for code in codes if code not in clean), 1)


if __name__ == "__main__":
    sys.exit(main())
