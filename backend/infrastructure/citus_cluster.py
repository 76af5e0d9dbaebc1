"""A local Citus cluster for development and tests: a coordinator and two workers.

Three PostgreSQL 15 instances from the machine's Debian packages (Citus is built into them by
`../shared/tools/citus/install`), on loopback, `wal_level = logical` so shards move online.
Every node gets the same roles, database and grants as the embedded server
(`embedded_postgres.bootstrap`), then the workers join the coordinator. The API and the
migrations talk to the coordinator only (docs/scale-out.md).

Loopback trust authentication is for this throwaway local cluster only: production uses
the node-to-node authentication of docs/scale-out.md.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from backend.infrastructure import embedded_postgres

PG_BIN = Path(os.environ.get("CITUS_PG_BIN", "/usr/lib/postgresql/15/bin"))
HOST = "127.0.0.1"
SUPERUSER = "postgres"
_REPO = Path(__file__).resolve().parents[2]
# The shared tools sit beside the clone (CI) or beside the worktrees' parent (development).
INSTALL_TOOL_CANDIDATES = [
    Path(os.environ["CITUS_INSTALL_TOOL"]) if os.environ.get("CITUS_INSTALL_TOOL") else None,
    _REPO.parent / "shared" / "tools" / "citus" / "install",
    _REPO.parent.parent / "shared" / "tools" / "citus" / "install",
]
INSTALL_TOOL = next(
    (path for path in INSTALL_TOOL_CANDIDATES if path is not None and path.exists()),
    _REPO.parent / "shared" / "tools" / "citus" / "install",
)

NODE_SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "shared_preload_libraries": "'citus'",
    "wal_level": "logical",
    "max_connections": "200",
    "max_wal_senders": "20",
    "max_replication_slots": "20",
    # A throwaway cluster: durability buys nothing and costs the shared machine IO.
    "fsync": "off",
    "full_page_writes": "off",
    # synchronous_commit stays on: an online move waits until the target has replayed up to
    # the source's pg_current_wal_lsn(), which does not yet cover commits acknowledged with
    # synchronous_commit = off (still in WAL buffers): those writes were lost at the switch
    # (tests/citus/test_moves.py caught it; docs/scale-out.md, Limits).
}


def unavailable_reason() -> str | None:
    """Why a local cluster cannot start here, or None when it can."""
    if not (PG_BIN / "pg_ctl").exists():
        return f"no PostgreSQL 15 server binaries in {PG_BIN}"
    # The extension itself decides, wherever the install tool is (CI has it beside the clone,
    # a clone elsewhere may not).
    if (PG_BIN.parent / "lib" / "citus.so").exists():  # Debian's layout: bin/ and lib/ side by side
        return None
    return f"Citus is not installed into PostgreSQL 15 (run {INSTALL_TOOL} as root)"


def _as_server_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the `postgres` user."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SUPERUSER, "--", *command]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Node:
    data_dir: Path
    port: int

    def url(self, user: str = SUPERUSER, database: str = "postgres") -> str:
        return f"postgresql://{user}@{HOST}:{self.port}/{database}"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), *args]),
            check=True,
            capture_output=True,
        )

    def init(self, *, citus: bool = True) -> None:
        self.data_dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, SUPERUSER, SUPERUSER)
        subprocess.run(
            _as_server_user(
                [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust"]
            ),
            check=True,
            capture_output=True,
        )
        settings = {**NODE_SETTINGS, "port": str(self.port), "unix_socket_directories": f"'{self.data_dir}'"}
        if not citus:
            del settings["shared_preload_libraries"]
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def refuse_tenant_roles(self) -> None:
        """Tenant roles may log in (the coordinator connects to the workers as them), but
        never into the coordinator itself: only the runtime role does, then assumes them."""
        group = f"+{embedded_postgres.RUNTIME_ROLE}_tenant"
        hba = self.data_dir / "pg_hba.conf"
        # `+group` also matches indirect members, and the runtime role is a member of every
        # tenant role: the deployment's own roles are admitted by name first.
        admitted = ",".join((SUPERUSER, embedded_postgres.OWNER_ROLE, embedded_postgres.RUNTIME_ROLE))
        rules = (
            f"local all {admitted} trust\nhost all {admitted} {HOST}/32 trust\n"
            f"local all {group} reject\nhost all {group} all reject\n"
        )
        hba.write_text(rules + hba.read_text())

    def start(self) -> None:
        self.pg_ctl("start", "-w", "-l", str(self.data_dir / "server.log"))

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "fast", "-w")


@dataclass
class CitusCluster:
    base_dir: Path
    coordinator: Node
    workers: list[Node] = field(default_factory=list)

    @property
    def nodes(self) -> list[Node]:
        return [self.coordinator, *self.workers]

    @property
    def superuser_url(self) -> str:
        return self.coordinator.url(SUPERUSER, embedded_postgres.DATABASE)

    @property
    def owner_url(self) -> str:
        return self.coordinator.url(embedded_postgres.OWNER_ROLE, embedded_postgres.DATABASE)

    @property
    def runtime_url(self) -> str:
        return self.coordinator.url(embedded_postgres.RUNTIME_ROLE, embedded_postgres.DATABASE)

    def stop(self, *, delete: bool = True) -> None:
        for node in self.nodes:
            try:
                node.stop()
            except subprocess.CalledProcessError:
                pass  # already stopped: nothing to do
        if delete and not os.environ.get("CITUS_KEEP_CLUSTER"):  # kept: to read the server logs
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _in_database(superuser_url: str) -> str:
    """The same server and user, in the application's database."""
    return psycopg.conninfo.make_conninfo(superuser_url, dbname=embedded_postgres.DATABASE)


def _address(url: str) -> tuple[str, int]:
    info = psycopg.conninfo.conninfo_to_dict(url)
    return str(info.get("host") or HOST), int(info.get("port") or 5432)


def _create_citus_extension(superuser_url: str) -> None:
    with psycopg.connect(_in_database(superuser_url), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS citus")


def form_cluster(coordinator_url: str, worker_urls: list[str]) -> None:
    """Join the workers to the coordinator, idempotently (the local cluster, and the one-shot
    `cluster-init` of docker-compose.citus.yml through scripts/citus_bootstrap.py). URLs are
    the superuser's, to each node's `postgres` database, with the host and port the
    coordinator reaches the node by.

    Each worker gets the roles, the database and the extension first (the roles own the
    database). On the coordinator: the database (owned by the superuser for now), the
    extension, the workers joined, and only then the two roles, created by the superuser in
    the Citus database: so Citus records them as distributed objects. A role it does not know
    would be propagated again by the owner's first DDL in a transaction, as the owner, with
    `ALTER ROLE ... NOSUPERUSER`, which only a superuser may run (`must be superuser to alter
    superuser roles`)."""
    for worker_url in worker_urls:
        embedded_postgres.bootstrap(worker_url)
        _create_citus_extension(worker_url)
    with psycopg.connect(coordinator_url, autocommit=True) as conn:
        database = embedded_postgres.DATABASE
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} ENCODING 'UTF8'").format(sql.Identifier(database)))
    _create_citus_extension(coordinator_url)
    with psycopg.connect(_in_database(coordinator_url), autocommit=True) as conn:
        conn.execute("SELECT citus_set_coordinator_host(%s, %s)", _address(coordinator_url))
        for worker_url in worker_urls:
            host, port = _address(worker_url)
            joined = conn.execute(
                "SELECT 1 FROM pg_dist_node WHERE nodename = %s AND nodeport = %s", (host, port)
            ).fetchone()
            if not joined:
                conn.execute("SELECT citus_add_node(%s, %s)", (host, port))
        for role, attributes in embedded_postgres.ROLE_ATTRIBUTES.items():
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(role), sql.SQL(attributes)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(embedded_postgres.DATABASE), sql.Identifier(embedded_postgres.OWNER_ROLE)
            )
        )
    # Settings, grants and the closed `public` schema, as on the workers (idempotent).
    embedded_postgres.bootstrap(coordinator_url)
    with psycopg.connect(_in_database(coordinator_url), autocommit=True) as conn:
        # The coordinator opens its worker connections as the tenant role of each transaction,
        # and caches one per (worker, role) in every backend: with many tenants the workers ran
        # out of connection slots (scripts/bench.py citus, 200 tenants). The runtime role's
        # sessions keep none: a tenant transaction opens its worker connection (docs/scale-out.md).
        conn.execute(
            sql.SQL("ALTER ROLE {} SET citus.max_cached_conns_per_worker = 0").format(
                sql.Identifier(embedded_postgres.RUNTIME_ROLE)
            )
        )


def start(base_dir: Path, *, workers: int = 2) -> CitusCluster:
    """Create, start and join a coordinator and `workers` workers under `base_dir`."""
    base_dir.mkdir(parents=True, exist_ok=True)
    base_dir.chmod(0o755)  # the server user must reach its data directories
    cluster = CitusCluster(
        base_dir=base_dir,
        coordinator=Node(base_dir / "coordinator", _free_port()),
        workers=[Node(base_dir / f"worker{index}", _free_port()) for index in range(1, workers + 1)],
    )
    try:
        for node in cluster.nodes:
            node.init()
        cluster.coordinator.refuse_tenant_roles()
        for node in cluster.nodes:
            node.start()
        form_cluster(cluster.coordinator.url(), [worker.url() for worker in cluster.workers])
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_single(base_dir: Path) -> Node:
    """One plain PostgreSQL 15 server (no Citus) with the same settings, roles and database as
    the cluster's nodes: the single server `scripts/bench.py citus` compares the cluster with."""
    base_dir.mkdir(parents=True, exist_ok=True)
    base_dir.chmod(0o755)
    node = Node(base_dir / "single", _free_port())
    node.init(citus=False)
    node.start()
    try:
        embedded_postgres.bootstrap(node.url())
    except BaseException:
        node.stop()
        raise
    return node


def make_coordinator(node: Node) -> None:
    """Turn a running single server (start_single) into one that can be the coordinator, as
    an operator upgrading from one server does: Citus preloaded, tenant roles refused at its
    door (they log in to the workers only), restarted. Its data is untouched; the extension
    and the workers come with `add_workers`."""
    with open(node.data_dir / "postgresql.conf", "a") as conf:
        conf.write("shared_preload_libraries = 'citus'\n")
    node.refuse_tenant_roles()
    node.stop()
    node.start()


def add_workers(base_dir: Path, coordinator: Node, *, workers: int = 2) -> CitusCluster:
    """Start `workers` new workers under `base_dir` and join them to `coordinator`, a server
    that already holds the application's database (make_coordinator): the extension is created
    in it, and `citus_add_node` copies every existing role (tenant roles included) to the
    workers as distributed objects. The tenant schemas stay local until `tenants distribute`."""
    base_dir.mkdir(parents=True, exist_ok=True)
    base_dir.chmod(0o755)
    cluster = CitusCluster(
        base_dir=base_dir,
        coordinator=coordinator,
        workers=[Node(base_dir / f"worker{index}", _free_port()) for index in range(1, workers + 1)],
    )
    try:
        for worker in cluster.workers:
            worker.init()
            worker.start()
        form_cluster(coordinator.url(), [worker.url() for worker in cluster.workers])
    except BaseException:
        for worker in cluster.workers:
            try:
                worker.stop()
            except subprocess.CalledProcessError:
                pass  # never started
        raise
    return cluster
