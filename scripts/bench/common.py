"""What every benchmark shares: a fresh database and app, the machine's description,
percentiles, the table of figures, recording the run, and profiling."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, text

from backend.core.config import PROJECT_ROOT, Settings

RECORDS_DIR = PROJECT_ROOT / "docs" / "benchmarks" / "records"


@dataclass
class Report:
    """One table of figures, and what a reader needs to interpret it."""

    headers: list[str]
    rows: list[list[str]]
    settings: dict[str, object]
    server: str
    notes: list[str] = field(default_factory=list)
    # The figures the targets of performance.md are judged on (scripts/bench/targets.py), by name.
    figures: dict[str, float] = field(default_factory=dict)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: a smoke run, not figures (never recorded)"
    )
    parser.add_argument(
        "--records", type=Path, default=RECORDS_DIR, help="folder the run's JSON record is written to"
    )
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument(
        "--profile", type=Path, metavar="FILE", help="also write a pyinstrument profile of the measured part"
    )


BENCH_TOKEN_TTL_S = 6 * 3600


class BenchDatabase:
    """A fresh embedded PostgreSQL in a temporary directory, or DATABASE_URL (plus
    MIGRATION_DATABASE_URL) when set: then its registry must be empty, because benchmarks
    add tenants and move them to revisions the repository does not have. `citus`: the database
    is a Citus coordinator (Settings.citus; the gunicorn it serves reads CITUS itself)."""

    def __init__(self, *, citus: bool = False) -> None:
        self.citus = citus

    def __enter__(self) -> BenchDatabase:
        from backend import create_app
        from backend.cli.owner import owner_engine
        from backend.cli.tenants import migrate_shared
        from backend.infrastructure import embedded_postgres

        self._tmp = tempfile.TemporaryDirectory(prefix="bench-")
        tmp = Path(self._tmp.name)
        self._server = None
        if os.environ.get("DATABASE_URL"):
            runtime_url = os.environ["DATABASE_URL"]
            owner_url = os.environ.get("MIGRATION_DATABASE_URL", runtime_url)
            self.where = "DATABASE_URL"
        else:
            self._server = embedded_postgres.start(tmp / "pgdata", cleanup="delete")
            runtime_url, owner_url = self._server.runtime_url, self._server.owner_url
            self.where = "embedded, same machine"
        self.settings = Settings(
            env="development",
            database_url=runtime_url,
            migration_database_url=owner_url,
            var_dir=tmp / "var",
            # The bench's tokens must outlive its longest run (growing a fleet of 10,000
            # tenants takes longer than the 15 minutes of a production access token).
            access_token_ttl_s=BENCH_TOKEN_TTL_S,
            citus=self.citus,
        )
        self.app = create_app(self.settings)
        self.runtime = self.app.extensions["saas"]
        # The owner role, as the worker and the commands hold it (the API's Runtime has none).
        self.owner_engine = owner_engine(self.app)
        with self.app.app_context():
            migrate_shared()
        self._refuse_a_used_database()
        return self

    def __exit__(self, *exc_info) -> None:
        from backend.infrastructure import fleet

        fleet.dispose_engines()
        self.runtime.engine.dispose()
        self.owner_engine.dispose()
        if self._server is not None:
            self._server.server.cleanup()
        self._tmp.cleanup()

    @property
    def embedded(self) -> bool:
        """Whether the server is the bench's own, on this machine (its processes can be read)."""
        return self._server is not None

    def provision(self, slug: str):
        """One bench tenant by the product's provisioning (fast path), owner `<slug>@bench...`."""
        from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
        from backend.service.tenants import provision_tenant

        return provision_tenant(
            slug=slug,
            name=f"Bench {slug}",
            owner_email=f"{slug}@bench.example.com",
            trial_days=14,
            now=datetime.now(UTC),
            uow=SqlRegistryUnitOfWork(self.owner_engine, self.runtime.runtime_role),
        )

    def _refuse_a_used_database(self) -> None:
        from backend.infrastructure.sql.tenants import tenants

        with self.owner_engine.connect() as connection:
            count = connection.execute(select(func.count()).select_from(tenants)).scalar_one()
        if count:
            raise SystemExit(f"the benchmark database already has {count} tenant(s): use an empty one")

    def server_cpu_seconds(self) -> float | None:
        """CPU time used so far by the embedded server (postmaster, its live children and the
        children it has reaped), or None for a server elsewhere."""
        if self._server is None:
            return None
        import psutil  # installed with embedded-postgres

        return tree_cpu_seconds(psutil.Process(self._server.server.get_pid()))

    def client_backend_pids(self) -> list[int]:
        """The backends of the app's pooled connections (application_name saas-api: a column
        every role may read, unlike backend_type for other roles' sessions)."""
        with self.owner_engine.connect() as connection:
            return list(
                connection.execute(
                    text("SELECT pid FROM pg_catalog.pg_stat_activity WHERE application_name = 'saas-api'")
                ).scalars()
            )

    def server_version(self) -> str:
        with self.owner_engine.connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar_one()
        return f"PostgreSQL {version} ({self.where})"


def session_token(runtime, user_id, tenant_id) -> str:
    """An access token of a real session of the member (backend/cli/identity), valid for the
    whole run."""
    from backend.cli.identity import member_session_token

    return member_session_token(
        runtime, user_id=user_id, tenant_id=tenant_id, refresh_ttl_s=BENCH_TOKEN_TTL_S
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def machine() -> str:
    cores = os.cpu_count()
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.1f} GiB RAM"
    return f"{cores} cores ({model or platform.machine()}){memory}, {platform.system()} {platform.release()}"


def git(*args: str) -> str:
    git_binary = shutil.which("git")
    if git_binary is None:
        return ""
    done = subprocess.run([git_binary, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    return done.stdout.rstrip("\n")


def tree_state() -> tuple[str, bool]:
    """(commit, clean): a figure counts only from a committed tree. Records and the status
    page they generate are the bench's own output, not part of the tree measured."""
    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return head, not changed_beyond_records(git("status", "--porcelain", "-z"))


def changed_beyond_records(porcelain_z: str) -> bool:
    """Whether `git status --porcelain -z` lists a change other than the records and the
    status page (entries are `XY path`; X may be a space)."""
    own = ("docs/benchmarks/records/", "docs/benchmarks.md")
    return any(not entry[3:].startswith(own) for entry in porcelain_z.split("\0") if entry)


@dataclass
class Run:
    """When a benchmark ran and how busy the machine was (os.getloadavg, 1 minute)."""

    started: datetime
    load_before: float

    @staticmethod
    def begin() -> Run:
        return Run(datetime.now(UTC), os.getloadavg()[0])


def publish(name: str, report: Report, args: argparse.Namespace, run: Run) -> Path | None:
    """Print the table; write the run's JSON record unless it was a smoke run, --no-record,
    or the tree had uncommitted changes (then it says so and records nothing)."""
    table = markdown_table(report.headers, report.rows)
    settings = ", ".join(f"{k}={v}" for k, v in report.settings.items())
    print(f"\n{name} ({settings})\n\n{table}\n")
    for note in report.notes:
        print(f"- {note}")
    print(f"figures: {json.dumps({key: round(value, 4) for key, value in report.figures.items()})}")
    head, clean = tree_state()
    if args.no_record or args.quick:
        return None
    if not clean:
        print(
            f"\nnot recorded: the tree of {head} has uncommitted changes (figures count from committed trees)"
        )
        return None
    record = {
        "benchmark": name,
        "started": run.started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": head,
        "machine": machine(),
        "cores": os.cpu_count(),
        "load_average": {"before": round(run.load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "server": report.server,
        "python": platform.python_version(),
        "settings": report.settings,
        "figures": {key: round(value, 4) for key, value in report.figures.items()},
        "table": {"headers": report.headers, "rows": report.rows},
        "notes": report.notes,
    }
    args.records.mkdir(parents=True, exist_ok=True)
    path = args.records / f"{run.started.strftime('%Y%m%dT%H%M%SZ')}-{name}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nrecorded in {path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path}")
    return path


@contextlib.contextmanager
def profiled(args: argparse.Namespace, label: str) -> Iterator[None]:
    """pyinstrument over the block when --profile FILE was given (text, or HTML for .html)."""
    if not args.profile:
        yield
        return
    from pyinstrument import Profiler  # a dev tool: pip install pyinstrument

    profiler = Profiler(interval=0.0005)
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        path = args.profile.with_name(f"{args.profile.stem}-{label}{args.profile.suffix}")
        path.write_text(
            profiler.output_html() if path.suffix == ".html" else profiler.output_text(show_all=False)
        )
        print(f"profile of {label}: {path}")


def tree_cpu_seconds(process) -> float:
    """CPU seconds of a process, of its live descendants, and of the children they reaped."""
    import psutil

    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = member.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total
