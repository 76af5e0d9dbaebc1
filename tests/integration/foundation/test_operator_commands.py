"""`flask --app backend tenants ...` and `scripts/tenants.py ...` run the same commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from backend.core.config import PROJECT_ROOT
from tests.conftest import unique_slug
from tests.owner import owner_engine

BIN = Path(sys.executable).parent


def _run(settings, *args, launcher="flask"):
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "MIGRATION_DATABASE_URL": settings.owner_database_url,
        "VAR_DIR": str(settings.var_dir),
        "APP_ENV": "test",
    }
    if launcher == "flask":
        command = [str(BIN / "flask"), "--app", "backend", "tenants", *args]
    else:
        command = [sys.executable, str(PROJECT_ROOT / "scripts/tenants.py"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)


def test_provision_creates_the_schema_and_list_shows_it(settings, runtime):
    slug = unique_slug("cli")
    done = _run(
        settings, "provision", "--slug", slug, "--name", "Acme", "--owner-email", f"{slug}@example.com"
    )
    assert done.returncode == 0, done.stderr
    assert f"provisioned {slug}" in done.stdout

    listed = _run(settings, "list", "--format", "json", launcher="script")
    assert listed.returncode == 0, listed.stderr
    (row,) = [t for t in json.loads(listed.stdout) if t["slug"] == slug]
    with owner_engine().connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_namespace WHERE nspname = :n"), {"n": row["schema_name"]}
        ).scalar()
    assert exists == 1


def test_failures_exit_non_zero_with_one_line(settings):
    slug = unique_slug("cli")
    args = ("provision", "--slug", slug, "--name", "Acme", "--owner-email", f"{slug}@example.com")
    assert _run(settings, *args).returncode == 0
    again = _run(settings, *args, launcher="script")
    assert again.returncode != 0
    assert "slug_taken" in again.stderr
    bad = _run(settings, "provision", "--slug", "Bad Slug", "--name", "X", "--owner-email", "x@example.com")
    assert bad.returncode != 0
    assert "validation_error" in bad.stderr and "Traceback" not in bad.stderr


def test_migrate_reports_shared_and_tenants(settings, make_tenant):
    make_tenant()
    done = _run(settings, "migrate")
    assert done.returncode == 0, done.stderr
    assert "shared schema at" in done.stdout
    assert "0 failed" in done.stdout
