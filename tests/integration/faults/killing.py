"""Deterministic kills: hold a lock the victim needs halfway through its transaction, wait
until PostgreSQL shows its backend blocked behind us, SIGKILL the process, let go.

The victim is then provably inside its work (its earlier statements ran, its transaction is
open) and provably not finished: what it leaves behind is what a crash at that point leaves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from backend.core.config import PROJECT_ROOT

BIN = Path(sys.executable).parent
WAIT_S = 90


def cli_env(settings) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "MIGRATION_DATABASE_URL": settings.owner_database_url,
        "VAR_DIR": str(settings.var_dir),
        "APP_ENV": "test",
        "LOG_LEVEL": "WARNING",
    }


def cli_command(*args: str) -> list[str]:
    return [str(BIN / "flask"), "--app", "backend", "tenants", *args]


def run_cli(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli_command(*args),
        env=cli_env(settings),
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=180,
    )


@contextlib.contextmanager
def held_lock(engine: Engine, table: str, mode: str) -> Iterator[int]:
    """Hold `LOCK TABLE <table> IN <mode> MODE` in an open transaction; yields our backend pid.
    `table` is a schema-qualified name the test built from validated names."""
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.exec_driver_sql(f"LOCK TABLE {table} IN {mode} MODE")
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        try:
            yield pid
        finally:
            transaction.rollback()


def poll(engine: Engine, query: str, params: dict, until, what: str) -> list:
    deadline = time.monotonic() + WAIT_S
    while True:
        with engine.connect() as connection:
            rows = connection.execute(text(query), params).scalars().all()
        if until(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def backends_blocked_by(engine: Engine, holder: int, process: subprocess.Popen) -> list[int]:
    """Wait until some backend waits for the lock `holder` holds; its pids."""

    def blocked(rows: list) -> bool:
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the victim ended before blocking ({process.returncode}): {out} {err}")
        return bool(rows)

    return poll(
        engine,
        "SELECT pid FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))",
        {"holder": holder},
        blocked,
        "the victim to block on our lock",
    )


def wait_backends_gone(engine: Engine, pids: list[int]) -> None:
    """A killed client's backend ends (rolling back) once it next talks to its socket."""
    poll(
        engine,
        "SELECT pid FROM pg_stat_activity WHERE pid = ANY(:pids)",
        {"pids": pids},
        lambda rows: not rows,
        "the victim's backend to end",
    )


@dataclass
class Killed:
    returncode: int
    backends: list[int]
    created: int  # relations the victim had created (exclusive locks held) when it was killed


def relations_created(engine: Engine, pids: list[int]) -> int:
    """Relations the victims hold AccessExclusiveLock on: in these commands, tables they made
    (or are dropping) in their open transaction: proof the kill lands inside the work."""
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE pid = ANY(:pids) AND locktype = 'relation'"
                " AND mode = 'AccessExclusiveLock' AND granted"
            ),
            {"pids": pids},
        ).scalar_one()


def kill_when_blocked(settings, engine: Engine, table: str, mode: str, *args: str) -> Killed:
    """Run `tenants <args>`, SIGKILL it (and any worker process it forked: its own process
    group) once it waits behind our lock on `table`, then let go and wait until its backend
    is gone."""
    return kill_command_when_blocked(settings, engine, table, mode, cli_command(*args))


def worker_command(*args: str) -> list[str]:
    """The job worker, without its schedule: it runs the jobs the test deferred, nothing else."""
    return [str(BIN / "flask"), "--app", "backend", "worker", "--no-schedule", *args]


def kill_command_when_blocked(settings, engine: Engine, table: str, mode: str, command: list[str]) -> Killed:
    """`kill_when_blocked` for any of the application's commands (the job worker too)."""
    with held_lock(engine, table, mode) as holder:
        process = subprocess.Popen(
            command,
            env=cli_env(settings),
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            backends = backends_blocked_by(engine, holder, process)
            created = relations_created(engine, backends)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=WAIT_S)
    wait_backends_gone(engine, backends)
    return Killed(process.returncode, backends, created)


def orphans(engine: Engine) -> tuple[set[str], set[str], set[str]]:
    """(tenant schemas without a registry row, live registry rows without their schema,
    tenant roles without their schema): what a half-made or half-removed tenant leaves.
    A spare schema's row in `shared.spare_schemas` registers it as a tenant's row does."""
    with engine.connect() as connection:
        schemas = set(
            connection.execute(
                text("SELECT nspname FROM pg_namespace WHERE nspname ~ '^tenant_[0-9a-f]{32}$'")
            ).scalars()
        )
        registered = set(
            connection.execute(
                text(
                    "SELECT schema_name FROM shared.tenants WHERE status <> 'deleted'"
                    " UNION ALL SELECT schema_name FROM shared.spare_schemas"
                )
            ).scalars()
        )
        roles = set(
            connection.execute(
                text("SELECT rolname FROM pg_roles WHERE rolname ~ '^tenant_[0-9a-f]{32}$'")
            ).scalars()
        )
    return schemas - registered, registered - schemas, roles - schemas
