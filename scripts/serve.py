#!/usr/bin/env python3
"""`make run`: start the embedded PostgreSQL when DATABASE_URL is unset, migrate the shared
schema and every tenant, then serve the API with gunicorn on HOST:PORT (127.0.0.1:8000).

`make run-citus` (`--citus`): the same on a fresh local Citus cluster, a coordinator and two
workers (backend/infrastructure/citus_cluster.py), removed when the server stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from backend.core.config import Settings
from backend.core.tokens import load_signing_keys
from backend.infrastructure import citus_cluster, embedded_postgres

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main() -> int:
    settings = Settings.from_env()
    env = dict(os.environ)
    database = cluster = None
    if "--citus" in sys.argv[1:]:
        if reason := citus_cluster.unavailable_reason():
            print(f"cannot start a Citus cluster: {reason}", file=sys.stderr)
            return 2
        cluster = citus_cluster.start(Path(tempfile.mkdtemp(prefix="citus-run-")))
        env.update(DATABASE_URL=cluster.runtime_url, MIGRATION_DATABASE_URL=cluster.owner_url, CITUS="1")
        print(f"Citus coordinator on port {cluster.coordinator.port}", flush=True)
    elif not settings.database_url:
        # Held by this process: the server stops when `make run` stops.
        database = embedded_postgres.start(settings.var_dir / "pgdata")
        env["DATABASE_URL"] = database.runtime_url
        env["MIGRATION_DATABASE_URL"] = database.owner_url
        print(f"embedded PostgreSQL in {settings.var_dir / 'pgdata'}", flush=True)
    try:
        return serve(settings, env)
    finally:
        if cluster is not None:
            cluster.stop()
        del database  # the embedded server's atexit hook stops it


def serve(settings: Settings, env: dict) -> int:
    load_signing_keys(settings)  # create the development key once, before the workers start
    flask = [str(BIN / "flask"), "--app", "backend"]
    subprocess.run([*flask, "tenants", "migrate"], env=env, check=True, cwd=ROOT)
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", str(ROOT / "backend/gunicorn_conf.py"), "backend:create_app()"],
        env=env,
        cwd=ROOT,
    )

    def stop(signum, frame):
        server.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return server.wait()


if __name__ == "__main__":
    sys.exit(main())
