"""Every `tenants` command fails with one line on stderr and exit code 1, never a traceback
(backend/cli/errors.py): PostgreSQL unreachable, configuration missing, unexpected errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from backend.cli import tenants_cli
from backend.cli.errors import DEBUG_HINT, OperatorGroup
from backend.core.config import PROJECT_ROOT

BIN = Path(sys.executable).parent

# Arguments that get each command past click's own checks to its first database call.
# A command added to the group without a line here fails test_every_command_is_covered.
ARGS = {
    "provision": ["--slug", "acme", "--name", "Acme", "--owner-email", "owner@example.com"],
    "list": [],
    "migrate": [],
    "disable": ["--slug", "acme"],
    "enable": ["--slug", "acme"],
    "verify-worker": ["--email", "owner@example.com"],
    "delete": ["--slug", "acme"],
    "purge": ["--dry-run"],
    "export": ["--slug", "acme", "--out", "{tmp}/acme.tar"],
    "restore": ["--file", "{tmp}/missing.tar"],
    "spares": [],
    "downgrade": ["--slug", "acme", "--to", "base"],
    "extend-trial": ["--slug", "acme", "--days", "7"],
    "placement": [],
    "move": ["--slug", "acme", "--to", "worker1:5432"],
    "rebalance": [],
    "distribute": [],
    "reset-mfa": ["--email", "owner@example.com"],
    "send-password-reset": ["--email", "owner@example.com"],
}


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def env_for(tmp: Path, **overrides: str) -> dict:
    port = closed_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql+psycopg://app:secret@127.0.0.1:{port}/saas",
        "MIGRATION_DATABASE_URL": f"postgresql+psycopg://owner:secret@127.0.0.1:{port}/saas",
        "VAR_DIR": str(tmp),
        "APP_ENV": "test",
        "LOG_LEVEL": "INFO",
        **overrides,
    }
    return {name: value for name, value in env.items() if value is not None}


def run(env: dict, *args: str, launcher: str = "flask") -> subprocess.CompletedProcess:
    if launcher == "flask":
        command = [str(BIN / "flask"), "--app", "backend", "tenants", *args]
    else:
        command = [sys.executable, str(PROJECT_ROOT / "scripts/tenants.py"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)


def assert_one_line(done: subprocess.CompletedProcess, *expected: str) -> str:
    lines = done.stderr.splitlines()
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for part in expected:
        assert part in lines[0], lines[0]
    return lines[0]


def test_every_command_is_covered():
    assert isinstance(tenants_cli, OperatorGroup)
    assert set(tenants_cli.commands) <= set(ARGS), set(tenants_cli.commands) - set(ARGS)


@pytest.mark.parametrize("command", sorted(tenants_cli.commands))
def test_database_unreachable_is_one_line(command, tmp_path):
    args = [arg.format(tmp=tmp_path) for arg in ARGS[command]]
    done = run(env_for(tmp_path), command, *args)
    if command == "restore":  # the archive is read before the database is reached
        assert_one_line(done, "missing.tar")
    else:
        assert_one_line(done, "database unreachable", "Connection refused")


def test_the_script_launcher_says_the_same(tmp_path):
    done = run(env_for(tmp_path), "provision", *ARGS["provision"], launcher="script")
    assert_one_line(done, "database unreachable")


@pytest.mark.parametrize("launcher", ["flask", "script"])
def test_missing_configuration_is_one_line(launcher, tmp_path):
    env = env_for(tmp_path, APP_ENV="production", DATABASE_URL=None, MIGRATION_DATABASE_URL=None)
    done = run(env, "list", launcher=launcher)
    assert_one_line(done, "configuration:", "DATABASE_URL")


def test_unexpected_errors_are_one_line_with_the_debug_hint(tmp_path):
    # An unknown LOG_LEVEL makes logging set-up raise a ValueError while the app loads:
    # an error no handler knows, reached through the real command path.
    done = run(env_for(tmp_path, LOG_LEVEL="LOUD"), "list")
    assert_one_line(done, "unexpected ValueError", "LOG_LEVEL", DEBUG_HINT)


def test_debug_shows_the_traceback(tmp_path):
    done = run(env_for(tmp_path, LOG_LEVEL="DEBUG"), "list")
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "OperationalError" in done.stderr
