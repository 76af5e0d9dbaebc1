"""scripts/bench.py runs its benchmarks end to end at tiny sizes and prints and records their
tables. A smoke test: it checks that the figures come out, never what they are."""

from __future__ import annotations

import os
import subprocess
import sys

from backend.core.config import PROJECT_ROOT


def test_every_benchmark_prints_and_records_its_table(tmp_path):
    record = tmp_path / "benchmarks.md"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MIGRATION_DATABASE_URL")}
    done = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "scripts" / "bench.py"),
            "all",
            "--quick",
            "--record",
            str(record),
        ],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for table_line in (
        "| spare path p50, all provisions",
        "| chain / spare (p50), whole provisioning, at end",
        "| POST /api/v1/auth/signup p50 / p95, pool",
        "| add column + index, --jobs 2",
        "| nothing pending, 40 registry rows",
        "| throughput multi / single",
        "| role switch: throughput runtime / owner (multi)",
        "| export throughput / COPY (rows/s)",
        "| p99 during / before",
        "| p99 200 / 10 schemas",
        "| book appointment",
    ):
        assert table_line in done.stdout
    recorded = record.read_text()
    names = ("provision", "migrate", "requests", "export", "delete", "fleet", "soak")
    assert recorded.count("\n### ") == len(names)
    for name in names:
        assert f"### {name}: " in recorded
    assert "cores" in recorded and "PostgreSQL" in recorded and "(--quick" in recorded
