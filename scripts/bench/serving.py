"""Serving the real app for the request benchmarks: gunicorn (backend/gunicorn_conf.py) on a
loopback port, bench tenants with a verified worker and a few clients, tokens minted by the
app's TokenService, and the load generator (loadgen.py) run in other processes."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select, update

from backend.core.config import PROJECT_ROOT
from backend.core.db import set_tenant_search_path
from backend.domain.tenants import Tenant
from backend.infrastructure.sql.clients import clients
from backend.infrastructure.sql.identity import memberships, users
from bench.common import BenchDatabase, percentile, session_token, tree_cpu_seconds

BIN = Path(sys.executable).parent
LOADGEN = Path(__file__).resolve().parent / "loadgen.py"
START_TIMEOUT_S = 60


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY of gunicorn")
    parser.add_argument("--threads", type=int, default=4, help="GUNICORN_THREADS of gunicorn")
    parser.add_argument("--connections", type=int, default=4, help="connections per load process")
    parser.add_argument("--load-processes", type=int, default=2, help="load generator processes")
    parser.add_argument(
        "--server-profile",
        type=Path,
        metavar="FILE",
        help="sample the gunicorn workers with py-spy during the measured passes: FILE gets the "
        "collapsed stacks, FILE.txt the functions with the largest share of the samples",
    )
    parser.add_argument(
        "--pg-profile",
        type=Path,
        metavar="FILE",
        help="record the app's PostgreSQL backends with `perf` (call graphs) during the measured "
        "passes: FILE gets perf's data, FILE.txt the samples per backend and the functions with the "
        "largest inclusive and self shares",
    )


@contextmanager
def server_profiled(args: argparse.Namespace, server: Server, label: str) -> Iterator[None]:
    """py-spy over the server's workers for the block (--server-profile); it samples another
    process from outside, so the profile costs the server nothing but the CPU py-spy takes."""
    if not args.server_profile:
        yield
        return
    path = args.server_profile.with_name(f"{args.server_profile.stem}-{label}{args.server_profile.suffix}")
    spy = subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(server.process.pid),
            "--subprocesses",
            "--gil",  # only the thread holding the GIL: where the CPU goes, not the waits
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(path),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # attach before the load starts
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=60)
        if spy.returncode not in (0, -signal.SIGINT) or not path.exists():
            print(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-500:]}")
        else:
            summary = path.with_name(path.name + ".txt")
            summary.write_text(summarize_stacks(path.read_text()))
            print(f"server profile of {label}: {path} (summary {summary})")


@contextmanager
def postgres_profiled(args: argparse.Namespace, db: BenchDatabase, label: str) -> Iterator[None]:
    """`perf record` with call graphs of the server's client backends over the block
    (--pg-profile): the pool's connections, open since the warm-up, are the ones that serve
    the pass. FILE.txt gets the samples per backend and PostgreSQL's functions by inclusive
    share (parse, analyze, plan, execute, catalog cache misses...) and by self share."""
    if not args.pg_profile:
        yield
        return
    perf = shutil.which("perf")
    if perf is None:
        raise SystemExit("--pg-profile needs perf (Debian: linux-perf)")
    path = args.pg_profile.with_name(f"{args.pg_profile.stem}-{label}{args.pg_profile.suffix}")
    backends = ",".join(str(pid) for pid in db.client_backend_pids())
    command = [perf, "record", "--pid", backends, "--freq", "299", "--call-graph", "dwarf,16384"]
    recorder = subprocess.Popen(
        [*command, "--quiet", "--output", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        _, err = recorder.communicate(timeout=300)

        def report(*options: str) -> str:
            done = subprocess.run(
                [perf, "report", "--input", str(path), "--stdio", *options],
                capture_output=True,
                text=True,
                check=False,
            )
            return done.stdout or done.stderr

        summary = path.with_name(path.name + ".txt")
        summary.write_text(
            "Samples per client backend:\n"
            + report("--no-children", "--sort", "pid", "--show-nr-samples", "-g", "none")
            + "\nInclusive (a function and what it calls):\n"
            + report("--children", "--sort", "symbol", "-g", "none", "--percent-limit", "1.5")
            + "\nSelf:\n"
            + report("--no-children", "--sort", "symbol", "-g", "none", "--percent-limit", "0.5")
            + f"\nperf record ({recorder.returncode}) said: {err.decode(errors='replace')[-2000:]}"
        )
        print(f"postgres profile of {label}: {summary}")


# Waiting, not working: gthread's selector and idle pool threads, the arbiter between signals,
# the access-cache listener waiting for notifications.
IDLE_LEAVES = (
    "select (selectors.py",
    "wait (threading.py",
    "_worker (concurrent",
    "wait_for_signals (gunicorn",
)
IDLE_ANYWHERE = ("_listen (backend/infrastructure/access_events.py",)


def summarize_stacks(collapsed: str, top: int = 25) -> str:
    """Share of samples per function (inclusive) and per leaf frame (self), busy samples only."""
    inclusive: dict[str, int] = {}
    leaf: dict[str, int] = {}
    total = idle = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame.strip() for frame in stack.split(";") if not frame.startswith("process ")]
        if not frames:
            continue
        if any(marker in frames[-1] for marker in IDLE_LEAVES) or any(
            marker in frame for frame in frames for marker in IDLE_ANYWHERE
        ):
            idle += count
            continue
        total += count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + count
    lines = [f"busy samples: {total} (idle left out: {idle})", "", "inclusive (share of busy samples):"]
    for frame, count in sorted(inclusive.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"  {100 * count / max(total, 1):5.1f}%  {frame}")
    lines += ["", "self (leaf frames):"]
    for frame, count in sorted(leaf.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"  {100 * count / max(total, 1):5.1f}%  {frame}")
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


METRICS_TOKEN = "bench-" + uuid.uuid4().hex


@dataclass
class Server:
    port: int
    process: subprocess.Popen

    def counter(self, name: str, **labels: str) -> float:
        """A counter summed over the workers, from the server's /metrics."""
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        body = connection.getresponse().read().decode()
        connection.close()
        wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
        prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
        return sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith(prefix))

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by gunicorn's master and workers."""
        import psutil

        return tree_cpu_seconds(psutil.Process(self.process.pid))

    def worker_pids(self) -> list[int]:
        import psutil

        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def worker_cpu_seconds(self) -> dict[int, float]:
        """CPU seconds used so far by each worker (to see how evenly they share the load)."""
        import psutil

        return {child.pid: tree_cpu_seconds(child) for child in psutil.Process(self.process.pid).children()}


@contextmanager
def gunicorn(
    db: BenchDatabase,
    args: argparse.Namespace,
    *,
    database_url: str | None = None,
    extra_env: dict | None = None,
    target: str = "backend:create_api()",
):
    """gunicorn serving `target` (the real app, or another WSGI app of scripts/bench/) against
    the bench database (the runtime role, or `database_url`), with the bench's signing keys
    (same VAR_DIR) and backend/gunicorn_conf.py; stopped on exit."""
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": database_url or db.settings.database_url,
        "VAR_DIR": str(db.settings.var_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(args.workers),
        "GUNICORN_THREADS": str(args.threads),
        "LOG_LEVEL": "WARNING",
        "METRICS_TOKEN": METRICS_TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-metrics-"),
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
        **(extra_env or {}),
    }
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", str(PROJECT_ROOT / "backend/gunicorn_conf.py"), target],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=log,
    )
    try:
        _wait_until_serving(process, port, log)
        yield Server(port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_serving(process: subprocess.Popen, port: int, log) -> None:
    import http.client

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise SystemExit(f"gunicorn exited: {log.read().decode(errors='replace')[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start serving in time")


def make_tenants(db: BenchDatabase, count: int, clients_each: int, prefix: str) -> list[tuple[Tenant, str]]:
    """`count` tenants by the fast provisioning path, each with a verified worker and
    `clients_each` clients; returns (tenant, worker access token) pairs."""
    runtime = db.runtime
    made = []
    for index in range(count):
        tenant = db.provision(f"{prefix}-{index:06d}")
        with db.owner_engine.begin() as connection:
            user_id = connection.execute(
                select(memberships.c.user_id).where(
                    memberships.c.tenant_id == tenant.id, memberships.c.role == "worker"
                )
            ).scalar_one()
            connection.execute(
                update(users).where(users.c.id == user_id).values(verified_at=datetime.now(UTC))
            )
            set_tenant_search_path(connection, tenant.schema_name)
            if clients_each:
                connection.execute(
                    insert(clients),
                    [
                        {"id": uuid.uuid4(), "name": f"Client {n}", "email": f"c{n}@bench.example.com"}
                        for n in range(clients_each)
                    ],
                )
        token = session_token(runtime, user_id, tenant.id)
        made.append((tenant, token))
    return made


@dataclass
class Load:
    latencies: list[float]
    errors: int
    seconds: float
    stamps: list[float] = field(default_factory=list)  # epoch second each request started
    cpu_s: float = 0.0  # CPU seconds the load generator's processes used

    @staticmethod
    def merged(loads: list[Load]) -> Load:
        """Several passes (or windows) as one: their requests, errors and seconds together."""
        return Load(
            latencies=[x for one in loads for x in one.latencies],
            errors=sum(one.errors for one in loads),
            seconds=sum(one.seconds for one in loads),
            cpu_s=sum(one.cpu_s for one in loads),
        )

    def between(self, start: float, end: float) -> Load:
        """The requests that started in [start, end] (epoch seconds)."""
        kept = [x for x, at in zip(self.latencies, self.stamps, strict=True) if start <= at <= end]
        return Load(kept, self.errors, end - start)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


def load(
    server: Server, tokens: list[str], requests: int, args: argparse.Namespace, path: str = "/api/v1/clients"
) -> Load:
    """`requests` GETs of `path` by `args.load_processes` loadgen processes of
    `args.connections` keep-alive connections each, the tokens spread round robin."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(tokens, handle)
    try:
        share = max(1, requests // args.load_processes)
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(LOADGEN),
                    "--port",
                    str(server.port),
                    "--path",
                    path,
                    "--tokens-file",
                    handle.name,
                    "--offset",
                    str(n * len(tokens) // args.load_processes),
                    "--requests",
                    str(share),
                    "--connections",
                    str(args.connections),
                    "--reconnect-every",
                    str(getattr(args, "reconnect_every", 0)),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(args.load_processes)
        ]
        results = [json.loads(p.communicate(timeout=1800)[0]) for p in processes]
    finally:
        os.unlink(handle.name)
    return Load(
        latencies=[x for r in results for x in r["latencies"]],
        stamps=[x for r in results for x in r["stamps"]],
        errors=sum(r["errors"] for r in results),
        seconds=max(r["end"] for r in results) - min(r["start"] for r in results),
        cpu_s=sum(r["cpu_s"] for r in results),
    )
