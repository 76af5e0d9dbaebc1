#!/usr/bin/env python3
"""Prepare a PostgreSQL server that we do not start ourselves (docker compose, a managed or
system PostgreSQL 15+): the database and its two roles exactly as `make run` and the tests get
them (backend/infrastructure/embedded_postgres.py bootstrap(), the one definition), plus the
passwords the application logs in with.

    SUPERUSER_DATABASE_URL=postgresql://postgres:...@db:5432/postgres \\
    OWNER_DB_PASSWORD=... APP_DB_PASSWORD=... scripts/db_bootstrap.py

Idempotent: compose runs it at every start (one-shot `db-init`), so changing a password in
.env and running `docker compose up -d` rotates it. Passwords reach the server as SCRAM
verifiers computed here (libpq's PQencryptPasswordConn, as psql's \\password does), never in
clear text, so no server log or pg_stat_activity ever shows them.
"""

from __future__ import annotations

import os
import sys

import psycopg
from psycopg import sql

from backend.infrastructure.embedded_postgres import DATABASE, OWNER_ROLE, RUNTIME_ROLE, bootstrap

PASSWORDS = {OWNER_ROLE: "OWNER_DB_PASSWORD", RUNTIME_ROLE: "APP_DB_PASSWORD"}


def set_passwords(superuser_url: str, passwords: dict[str, str]) -> None:
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        for role, password in passwords.items():
            verifier = conn.pgconn.encrypt_password(
                password.encode(), role.encode(), b"scram-sha-256"
            ).decode()
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier))
            )


def main() -> int:
    superuser_url = os.environ.get("SUPERUSER_DATABASE_URL")
    missing = [name for name in ("SUPERUSER_DATABASE_URL", *PASSWORDS.values()) if not os.environ.get(name)]
    if missing:
        print(f"db_bootstrap: {', '.join(missing)} must be set", file=sys.stderr)
        return 2
    bootstrap(superuser_url)
    set_passwords(superuser_url, {role: os.environ[name] for role, name in PASSWORDS.items()})
    print(f"database {DATABASE}: owner role {OWNER_ROLE}, runtime role {RUNTIME_ROLE}, passwords set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
