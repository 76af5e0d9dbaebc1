"""scripts/bench_soak.py --quick: gunicorn, a separate load process, mixed reads and writes
over a few tenants; zero errors and every row written is stored. A smoke run of the
benchmark (its figures are meaningless at this size: nothing here is timed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from backend.core.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_soak_quick_runs_clean(database):
    env = {
        **os.environ,
        "DATABASE_URL": database["runtime"],
        "MIGRATION_DATABASE_URL": database["owner"],
        "LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts/bench_soak.py"), "--quick"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (total,) = [line.split() for line in done.stdout.splitlines() if line.startswith("all ")]
    assert int(total[1]) > 0 and total[3] == "0"  # requests made, no error
    assert "vs stored" in done.stdout and ": equal" in done.stdout
