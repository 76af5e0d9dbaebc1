"""scripts/db_bootstrap.py (compose's one-shot db-init): bootstrap() plus passwords, sent as
SCRAM verifiers, idempotent, and refusing to run without its settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from backend import create_app
from backend.cli.tenants import migrate_shared
from backend.infrastructure.embedded_postgres import DATABASE, OWNER_ROLE, RUNTIME_ROLE, bootstrap
from tests.conftest import close_app

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "db_bootstrap.py"


@pytest.fixture()
def superuser_url(database):
    if "superuser" not in database:
        pytest.skip("needs the embedded server's superuser (DATABASE_URL given)")
    yield database["superuser"]
    with psycopg.connect(database["superuser"], autocommit=True) as conn:
        for role in (OWNER_ROLE, RUNTIME_ROLE):  # back to the embedded server's trust-only roles
            conn.execute(f'ALTER ROLE "{role}" PASSWORD NULL')


def run(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def verifiers(superuser_url: str) -> dict:
    with psycopg.connect(superuser_url) as conn:
        rows = conn.execute(
            "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
            ([OWNER_ROLE, RUNTIME_ROLE],),
        ).fetchall()
    return dict(rows)


def test_sets_scram_passwords_idempotently_and_rotates_them(superuser_url):
    env = {
        "SUPERUSER_DATABASE_URL": superuser_url,
        "OWNER_DB_PASSWORD": "owner-1",
        "APP_DB_PASSWORD": "app-1",
    }
    first = run(env)
    assert first.returncode == 0, first.stderr
    after_first = verifiers(superuser_url)
    assert all(value.startswith("SCRAM-SHA-256$") for value in after_first.values())
    assert "owner-1" not in str(after_first) and "app-1" not in str(after_first)

    again = run(env)
    assert again.returncode == 0, again.stderr  # roles and database exist: nothing breaks
    rotated = run({**env, "APP_DB_PASSWORD": "app-2"})
    assert rotated.returncode == 0, rotated.stderr
    after_rotation = verifiers(superuser_url)
    assert after_rotation[RUNTIME_ROLE] != after_first[RUNTIME_ROLE]


def test_refuses_to_run_without_its_settings(superuser_url):
    result = run({"SUPERUSER_DATABASE_URL": superuser_url, "OWNER_DB_PASSWORD": "", "APP_DB_PASSWORD": "x"})
    assert result.returncode == 2
    assert "OWNER_DB_PASSWORD must be set" in result.stderr


def database_defaults(superuser_url: str) -> dict[str, list[str]]:
    """search_path defaults per role ('' = the database's own) in the application database."""
    with psycopg.connect(superuser_url) as conn:
        rows = conn.execute(
            "SELECT coalesce(r.rolname, ''), s.setconfig FROM pg_db_role_setting s"
            " LEFT JOIN pg_roles r ON r.oid = s.setrole"
            " LEFT JOIN pg_database d ON d.oid = s.setdatabase"
            " WHERE d.datname = %s OR s.setdatabase = 0",
            (DATABASE,),
        ).fetchall()
    return {role: [c for c in config if c.startswith("search_path=")] for role, config in rows}


def test_roles_and_database_default_to_pg_catalog_and_an_older_database_keeps_working(
    superuser_url, settings, make_tenant, worker_token
):
    """PgBouncer refuses the `options` startup parameter, so the default search path is the
    roles' and the database's setting. A database bootstrapped before (no such setting) still
    serves directly, and its next `tenants migrate` sets the database's default."""
    defaults = database_defaults(superuser_url)
    assert defaults[RUNTIME_ROLE] == defaults[OWNER_ROLE] == defaults[""] == ["search_path=pg_catalog"]
    tenant = make_tenant()
    with psycopg.connect(superuser_url, autocommit=True) as conn:  # as an older release left it
        for role in (OWNER_ROLE, RUNTIME_ROLE):
            conn.execute(f'ALTER ROLE "{role}" RESET search_path')
        conn.execute(f'ALTER DATABASE "{DATABASE}" RESET search_path')
    app = create_app(settings)
    try:
        answer = app.test_client().get("/api/v1/clients", headers=worker_token(tenant))
        assert answer.status_code == 200, answer.json
        with app.app_context():
            migrate_shared()
        assert database_defaults(superuser_url).get("") == ["search_path=pg_catalog"]
    finally:
        close_app(app)
        bootstrap(superuser_url)
    assert database_defaults(superuser_url)[RUNTIME_ROLE] == ["search_path=pg_catalog"]
