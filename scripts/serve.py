#!/usr/bin/env python3
"""`make run`: start the embedded PostgreSQL when DATABASE_URL is unset, migrate the shared
schema and every tenant, then serve the API with gunicorn on HOST:PORT (127.0.0.1:8000)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from backend.core.config import Settings
from backend.core.logging import configure_logging
from backend.core.tokens import load_signing_keys
from backend.infrastructure import embedded_postgres

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


log = logging.getLogger("serve")


def main() -> int:
    configure_logging()  # JSON lines, like the server's own (docs/operations.md, "Logging")
    settings = Settings.from_env()
    env = dict(os.environ)
    database = None
    if not settings.database_url:
        # Held by this process: the server stops when `make run` stops.
        database = embedded_postgres.start(settings.var_dir / "pgdata")
        env["DATABASE_URL"] = database.runtime_url
        env["MIGRATION_DATABASE_URL"] = database.owner_url
        log.info("embedded PostgreSQL started", extra={"pgdata": str(settings.var_dir / "pgdata")})
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
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", str(ROOT / "backend/gunicorn_conf.py"), "backend:create_app()"],
        env=env,
        cwd=ROOT,
    )

    def stop(signum, frame):
        server.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = server.wait()
    del database  # the embedded server's atexit hook stops it
    return code


if __name__ == "__main__":
    sys.exit(main())
