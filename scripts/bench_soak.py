#!/usr/bin/env python3
"""soak: many tenants under mixed reads and writes for a while; zero errors, nothing lost.

`python scripts/bench_soak.py --tenants 20 --duration 30 [--connections 8] [--quick]`

Starts gunicorn (backend/gunicorn_conf.py) serving the app on loopback, over the embedded
PostgreSQL (or DATABASE_URL + MIGRATION_DATABASE_URL), provisions the tenants with a worker,
clients and client users, then runs a load process: a fixed number of keep-alive
connections, each looping over a random mix of reads and writes until the duration is over.
It reports requests, errors and latency percentiles per operation, and compares the rows
the load was told it created (201s) with the rows the database holds. Exits non-zero on any
error or any difference.

`add_arguments(parser)` and `run(args)` follow the interface of scripts/bench/ modules; the
result has the fields of their Report (headers, rows, settings, server, notes).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TABLES = ("clients", "appointments", "media")
# Operation -> weight in the mix. Reads dominate, as in use; every write creates one row.
MIX = {
    "list clients": 4,
    "list appointments": 4,
    "client: own appointments": 3,
    "client: own media": 2,
    "me": 1,
    "add client": 2,
    "rename client": 1,
    "book appointment": 2,
    "client: upload file": 1,
}
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
    "3a7e9b550000000a49444154789c63600000000200015c4b1e6c0000000049454e44ae426082"
)


@dataclass
class Result:
    headers: list[str]
    rows: list[list[str]]
    settings: dict[str, object]
    server: str
    notes: list[str] = field(default_factory=list)
    errors: int = 0
    lost: int = 0  # |rows created (201) - rows stored|, summed over tenants and tables

    @property
    def figures(self) -> dict[str, float]:
        return {"errors": float(self.errors), "lost_rows": float(self.lost)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument("--clients", type=int, default=5, help="clients per tenant at the start")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--seed", type=int, default=0)
    if not any(action.dest == "quick" for action in parser._actions):
        parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not figures")


# -- the load process ------------------------------------------------------------------------


class Load:
    """One load process: `connections` threads, each with one keep-alive connection."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.lock = threading.Lock()
        self.samples: dict[str, list[float]] = {name: [] for name in MIX}
        self.errors: dict[str, int] = dict.fromkeys(MIX, 0)
        self.failures: list[str] = []
        self.created = {t["id"]: dict.fromkeys(TABLES, 0) for t in spec["tenants"]}
        self.clients = {t["id"]: list(t["clients"]) for t in spec["tenants"]}
        self.slots = {t["id"]: 0 for t in spec["tenants"]}

    def run(self) -> dict:
        deadline = time.monotonic() + self.spec["duration"]
        threads = [
            threading.Thread(target=self.connection, args=(deadline, self.spec["seed"] + n))
            for n in range(self.spec["connections"])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {
            "samples": self.samples,
            "errors": self.errors,
            "failures": self.failures[:20],
            "created": self.created,
        }

    def connection(self, deadline: float, seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - a reproducible load mix, not a secret
        names, weights = list(MIX), list(MIX.values())
        conn = http.client.HTTPConnection("127.0.0.1", self.spec["port"], timeout=30)
        while time.monotonic() < deadline:  # bounded: the duration ends every loop
            name = rng.choices(names, weights)[0]
            tenant = rng.choice(self.spec["tenants"])
            started = time.perf_counter()
            try:
                ok, detail = self.operation(conn, rng, name, tenant)
            except (OSError, http.client.HTTPException) as error:
                ok, detail = False, f"{type(error).__name__}: {error}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.spec["port"], timeout=30)
            elapsed = time.perf_counter() - started
            with self.lock:
                self.samples[name].append(elapsed)
                if not ok:
                    self.errors[name] += 1
                    self.failures.append(f"{name}: {detail}")
        conn.close()

    def request(self, conn, method: str, path: str, token: str, body=None, content_type="application/json"):
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = content_type
        conn.request(method, f"/api/v1{path}", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()

    def operation(self, conn, rng: random.Random, name: str, tenant: dict) -> tuple[bool, str]:
        """Run one operation of the mix; (as expected?, what came back)."""
        someone = rng.choice(tenant["people"])
        worker, person = tenant["worker"], someone["token"]
        reads = {
            "list clients": ("/clients?page_size=20", worker),
            "list appointments": ("/appointments?page_size=20", worker),
            "client: own appointments": ("/appointments", person),
            "client: own media": ("/media", person),
            "me": ("/me", worker),
        }
        if name in reads:
            status, _ = self.request(conn, "GET", *reads[name])
            return status == 200, str(status)
        if name == "rename client":
            body = json.dumps({"name": f"Renamed {uuid.uuid4().hex[:8]}"})
            status, _ = self.request(conn, "PATCH", f"/clients/{self.any_client(rng, tenant)}", worker, body)
            return status == 200, str(status)
        if name == "add client":
            body = json.dumps({"name": f"Soak {uuid.uuid4().hex[:8]}"})
            status, data = self.request(conn, "POST", "/clients", worker, body)
            if status == 201:
                with self.lock:
                    self.clients[tenant["id"]].append(json.loads(data)["id"])
            return self.counted(status, tenant, "clients")
        if name == "book appointment":
            status, _ = self.request(conn, "POST", "/appointments", worker, self.booking(rng, tenant))
            return self.counted(status, tenant, "appointments")
        if name == "client: upload file":
            boundary = uuid.uuid4().hex
            # client_id is required of clients too: their own (GET /me answers it).
            owner = f'--{boundary}\r\nContent-Disposition: form-data; name="client_id"\r\n\r\n'
            owner += f"{someone['client_id']}\r\n"
            part = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="soak.png"\r\n\r\n'
            body = owner.encode() + part.encode() + PNG + f"\r\n--{boundary}--\r\n".encode()
            kind = f"multipart/form-data; boundary={boundary}"
            status, _ = self.request(conn, "POST", "/media", person, body, kind)
            return self.counted(status, tenant, "media")
        raise ValueError(name)  # MIX and this function change together

    def any_client(self, rng: random.Random, tenant: dict) -> str:
        with self.lock:
            return rng.choice(self.clients[tenant["id"]])

    def booking(self, rng: random.Random, tenant: dict) -> str:
        """A body for the tenant's next free hour: bookings never overlap, so each must be a 201."""
        with self.lock:
            slot = self.slots[tenant["id"]]
            self.slots[tenant["id"]] += 1
        starts = datetime(2032, 1, 5, tzinfo=UTC) + timedelta(hours=slot)
        ends = starts + timedelta(minutes=50)
        client_id = self.any_client(rng, tenant)
        return json.dumps(
            {"client_id": client_id, "starts_at": starts.isoformat(), "ends_at": ends.isoformat()}
        )

    def counted(self, status: int, tenant: dict, table: str) -> tuple[bool, str]:
        """A creation: 201 expected, and counted for the comparison with the rows stored."""
        if status == 201:
            with self.lock:
                self.created[tenant["id"]][table] += 1
        return status == 201, str(status)


def load_main(spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    Path(out_path).write_text(json.dumps(Load(spec).run()))
    return 0


# -- set-up, server, verification (the parent process) -----------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def provision(app, runtime, count: int, clients: int) -> list[dict]:
    """Tenants with a verified worker, `clients` clients, and two client users each."""
    from bench.common import session_token
    from sqlalchemy import func, update

    from backend.cli.owner import owner_engine
    from backend.domain.identity import Role
    from backend.infrastructure.sql.identity import (
        SqlMembershipRepository,
        SqlUserRepository,
        memberships,
        users,
    )
    from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
    from backend.service.tenants import provision_tenant

    http = app.test_client()
    owner_db = owner_engine(app)
    made = []
    for index in range(count):
        slug = f"soak-{index}-{uuid.uuid4().hex[:8]}"
        tenant = provision_tenant(
            slug=slug,
            name=f"Soak {index}",
            owner_email=f"owner-{slug}@example.com",
            trial_days=30,
            now=datetime.now(UTC),
            uow=SqlRegistryUnitOfWork(owner_db, runtime.runtime_role),
        )
        with owner_db.begin() as connection:
            owner = connection.execute(
                update(users)
                .where(users.c.id.in_(select_worker(memberships, tenant.id)))
                .values(verified_at=func.now())
                .returning(users.c.id)
            ).scalar_one()
        worker = session_token(runtime, owner, tenant.id)
        headers = {"Authorization": f"Bearer {worker}"}
        ids = []
        for n in range(clients):
            response = http.post("/api/v1/clients", json={"name": f"Client {n}"}, headers=headers)
            if response.status_code != 201:
                raise SystemExit(f"seeding failed: {response.status_code} {response.get_data(as_text=True)}")
            ids.append(response.json["id"])
        people = []
        for client_id in ids[:2]:
            user_id = uuid.uuid4()
            with owner_db.begin() as connection:
                SqlUserRepository(connection).add(
                    user_id, f"p-{user_id.hex[:12]}@example.com", "Person", None
                )
                SqlMembershipRepository(connection).add(
                    user_id=user_id, tenant_id=tenant.id, role=Role.CLIENT, client_id=uuid.UUID(client_id)
                )
            token = session_token(runtime, user_id, tenant.id)
            people.append({"client_id": client_id, "token": token})
        made.append(
            {
                "id": str(tenant.id),
                "schema": tenant.schema_name,
                "worker": worker,
                "clients": ids,
                "people": people,
            }
        )
    return made


def select_worker(memberships, tenant_id):
    from sqlalchemy import select

    return select(memberships.c.user_id).where(
        memberships.c.tenant_id == tenant_id, memberships.c.role == "worker"
    )


def stored_rows(owner, tenants: list[dict]) -> dict[str, dict[str, int]]:
    """Rows per tenant and table (live media only: the load never deletes anything)."""
    from psycopg import sql

    from backend.core.tenancy import schema_identifier

    counts = {}
    with owner.connect() as connection:
        for tenant in tenants:
            counts[tenant["id"]] = {}
            for table in TABLES:
                query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                    schema_identifier(tenant["schema"]), sql.Identifier(table)
                )
                counts[tenant["id"]][table] = connection.exec_driver_sql(query.as_string(None)).scalar_one()
    return counts


def start_gunicorn(env: dict, port: int, log: Path) -> subprocess.Popen:
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", str(ROOT / "backend/gunicorn_conf.py"), "backend:create_api()"],
            cwd=ROOT,
            env={**env, "HOST": "127.0.0.1", "PORT": str(port)},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    for _ in range(600):  # at most ~60 s: reached or not, never a measured time
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health/ready")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    process.kill()
    raise SystemExit("gunicorn did not become ready")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5))) - 1]


def table(outcome: dict, duration: float) -> tuple[list[str], list[list[str]]]:
    headers = ["operation", "requests", "errors", "p50", "p95", "p99", "max"]
    rows = []
    everything: list[float] = []
    for name in MIX:
        samples = outcome["samples"][name]
        everything += samples
        rows.append([name, str(len(samples)), str(outcome["errors"][name]), *latencies(samples)])
    total_errors = sum(outcome["errors"].values())
    rows.append(
        [
            "all",
            f"{len(everything)} ({len(everything) / duration:.0f}/s)",
            str(total_errors),
            *latencies(everything),
        ]
    )
    return headers, rows


def latencies(samples: list[float]) -> list[str]:
    if not samples:
        return ["-"] * 4
    return [f"{percentile(samples, q) * 1000:.1f} ms" for q in (50, 95, 99)] + [
        f"{max(samples) * 1000:.1f} ms"
    ]


@contextlib.contextmanager
def database(tmp: Path) -> Iterator[tuple[str, str, str]]:
    """(runtime URL, owner URL, where): DATABASE_URL, or an embedded server stopped after."""
    if os.environ.get("DATABASE_URL"):
        runtime_url = os.environ["DATABASE_URL"]
        yield runtime_url, os.environ.get("MIGRATION_DATABASE_URL", runtime_url), "DATABASE_URL"
        return
    from backend.infrastructure import embedded_postgres

    server = embedded_postgres.start(tmp / "pgdata", cleanup="delete")
    try:
        yield server.runtime_url, server.owner_url, "embedded, same machine"
    finally:
        server.server.cleanup()


@contextlib.contextmanager
def gunicorn(args: argparse.Namespace, settings, tmp: Path) -> Iterator[int]:
    """gunicorn serving the app on a free loopback port; stopped (SIGTERM) after."""
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "DATABASE_URL": settings.database_url,
        "VAR_DIR": str(settings.var_dir),  # the same signing key as the tokens issued here
        "WEB_CONCURRENCY": str(args.workers),
        "GUNICORN_THREADS": str(args.threads),
        "DB_POOL_SIZE": str(args.threads),
        "LOG_LEVEL": "WARNING",
    }
    server = start_gunicorn(env, port, tmp / "gunicorn.log")
    try:
        yield port
    finally:
        server.terminate()
        server.wait(timeout=60)


def run(args: argparse.Namespace) -> Result:
    from backend import create_app
    from backend.cli.owner import owner_engine
    from backend.cli.tenants import migrate_shared
    from backend.core.config import Settings

    if args.quick:
        tiny = {"tenants": 3, "duration": 3.0, "connections": 2, "clients": 2}
        args = argparse.Namespace(**{**vars(args), **tiny})
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as name,
        database(Path(name)) as (runtime_url, owner_url, where),
    ):
        tmp = Path(name)
        settings = Settings(
            env="development",
            database_url=runtime_url,
            migration_database_url=owner_url,
            var_dir=tmp / "var",
        )
        app = create_app(settings)
        runtime = app.extensions["saas"]
        owner = owner_engine(app)  # the commands' owner role (the API's Runtime has none)
        try:
            with app.app_context():
                migrate_shared()
            tenants = provision(app, runtime, args.tenants, args.clients)
            before = stored_rows(owner, tenants)
            with gunicorn(args, settings, tmp) as port:
                outcome = load(args, port, tenants, tmp)
            after = stored_rows(owner, tenants)
            with owner.connect() as connection:
                version = connection.exec_driver_sql("SHOW server_version").scalar_one()
        finally:
            runtime.engine.dispose()
            owner.dispose()
    return summarise(args, outcome, tenants, before, after, f"PostgreSQL {version} ({where})")


def load(args: argparse.Namespace, port: int, tenants: list[dict], tmp: Path) -> dict:
    """The load, in its own process (its own interpreter and GIL, as a client would be)."""
    spec = {"port": port, "duration": args.duration, "connections": args.connections, "seed": args.seed}
    spec_path, out_path = tmp / "spec.json", tmp / "outcome.json"
    spec_path.write_text(json.dumps({**spec, "tenants": tenants}))
    subprocess.run([sys.executable, __file__, "_load", str(spec_path), str(out_path)], check=True, cwd=ROOT)
    return json.loads(out_path.read_text())


def summarise(args, outcome: dict, tenants: list[dict], before: dict, after: dict, server: str) -> Result:
    """The table, and the comparison of the rows created (201s) with the rows stored."""
    created = {table: sum(outcome["created"][t["id"]][table] for t in tenants) for table in TABLES}
    stored = {table: sum(after[t["id"]][table] - before[t["id"]][table] for t in tenants) for table in TABLES}
    lost = sum(
        abs(outcome["created"][t["id"]][table] - (after[t["id"]][table] - before[t["id"]][table]))
        for t in tenants
        for table in TABLES
    )
    settings = {
        "tenants": args.tenants,
        "duration_s": args.duration,
        "connections": args.connections,
        "gunicorn": f"{args.workers}x{args.threads}",
        "seed": args.seed,
    }
    headers, rows = table(outcome, args.duration)
    result = Result(headers, rows, settings, server, errors=sum(outcome["errors"].values()), lost=lost)
    comparison = ", ".join(f"{table} {created[table]} vs {stored[table]}" for table in TABLES)
    result.notes.append(
        f"rows written (201) vs stored: {comparison}: " + ("equal" if lost == 0 else f"{lost} DIFFER")
    )
    result.notes.append("gunicorn, PostgreSQL and the load process share the machine (loopback)")
    result.notes += [f"error: {failure}" for failure in outcome["failures"]]
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_load"]:
        return load_main(argv[1], argv[2])
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # the table, not the access log of the set-up
    parser = argparse.ArgumentParser(prog="scripts/bench_soak.py", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    result = run(args)
    settings = ", ".join(f"{key}={value}" for key, value in result.settings.items())
    print(f"\nsoak ({settings}); {result.server}\n")
    widths = [max(len(row[i]) for row in [result.headers, *result.rows]) for i in range(len(result.headers))]
    for row in [result.headers, ["-" * w for w in widths], *result.rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for note in result.notes:
        print(f"- {note}")
    return 1 if result.errors or result.lost else 0


if __name__ == "__main__":
    sys.exit(main())
