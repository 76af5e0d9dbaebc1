"""docs/benchmarks.md is generated from the run records, and says "met" only where the
latest recorded run at the target's size meets the target."""

from __future__ import annotations

import subprocess
import sys

from backend.core.config import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "scripts"))

from bench.common import changed_beyond_records
from bench.status import TARGETS, render


def record(benchmark: str, started: str, settings: dict, figures: dict) -> dict:
    return {
        "benchmark": benchmark,
        "started": started,
        "commit": "0123456789ab",
        "machine": "2 cores (test)",
        "load_average": {"before": 0.5, "after": 0.7},
        "server": "PostgreSQL 18",
        "settings": settings,
        "figures": figures,
        "file": f"{started}-{benchmark}.json",
    }


def status_of(page: str, figure_words: str) -> str:
    [line] = [line for line in page.splitlines() if f"| {figure_words} " in line]
    return line.rstrip(" |").rsplit("|", 1)[-1].strip()


def test_the_committed_page_is_what_the_records_generate():
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "bench.py"), "status", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_met_only_at_the_targets_size_and_by_the_latest_run():
    says = "full creation (schema + role + grants) p50"
    small = record("provision", "2026-12-05T10:00:00+00:00", {"tenants": 1000}, {"creation_p50_ms": 10.0})
    assert status_of(render([small]), says) == "**not measured**"  # N = 2,000 is the target's size

    full_fast = record("provision", "2026-12-05T11:00:00+00:00", {"tenants": 2000}, {"creation_p50_ms": 10.0})
    assert status_of(render([small, full_fast]), says) == "met"

    full_slow = record("provision", "2026-12-05T12:00:00+00:00", {"tenants": 2000}, {"creation_p50_ms": 30.0})
    assert status_of(render([small, full_fast, full_slow]), says) == "**not met**"


def test_every_target_names_a_figure_its_benchmark_can_record():
    assert {target.benchmark for target in TARGETS} >= {
        "requests",
        "provision",
        "migrate",
        "export",
        "delete",
    }
    for target in TARGETS:
        assert target.compare in ("<", "<=", ">=", "==", "reported")
        assert target.compare == "reported" or target.threshold is not None


def test_only_a_committed_tree_is_recorded_the_records_themselves_aside():
    assert not changed_beyond_records(" M docs/benchmarks.md\0?? docs/benchmarks/records/x-requests.json\0")
    assert not changed_beyond_records("")
    assert changed_beyond_records(" M docs/benchmarks.md\0 M backend/core/db.py\0")
    assert changed_beyond_records("?? scripts/bench/new.py\0")


def test_a_miss_that_stays_says_why_while_the_latest_run_misses():
    says = "full creation, Alembic chain p50 / ours"
    [target] = [t for t in TARGETS if t.says == says]
    assert target.why_missed
    missed = record("provision", "2026-12-05T11:00:00+00:00", {"tenants": 2000}, {"creation_vs_chain": 2.0})
    page = render([missed])
    assert status_of(page, says) == "**not met**"
    assert "## Targets not met, and why" in page and target.why_missed in page
    met = record("provision", "2026-12-05T12:00:00+00:00", {"tenants": 2000}, {"creation_vs_chain": 5.5})
    assert target.why_missed not in render([missed, met])
