"""A local Citus cluster for development and tests: a coordinator and two workers.

Three PostgreSQL 15 instances from the machine's Debian packages (Citus is built into them by
`../shared/tools/citus/install`), on loopback, `wal_level = logical` so shards move online.
Every node gets the same roles, database and grants as the embedded server
(`embedded_postgres.bootstrap`), then the workers join the coordinator. The API and the
migrations talk to the coordinator only (docs/scale-out.md). The coordinator reaches each
worker through a PgBouncer in front of it (`Pooler`, `use_poolers`; docs/scale-out.md, "Worker
connections"), unless CITUS_POOLERS=0 or PgBouncer is not installed.

Each node's pg_hba is the deployment's (deploy/citus/coordinator-hba.sh, worker-hba.sh) with
loopback as the cluster's network: the tests exercise the rules a deployment runs with.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
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
# The deployment's pg_hba rules (docs/scale-out.md, "Node-to-node authentication"), applied to
# the local nodes too; the nodes' network is loopback here.
COORDINATOR_HBA = _REPO / "deploy" / "citus" / "coordinator-hba.sh"
WORKER_HBA = _REPO / "deploy" / "citus" / "worker-hba.sh"
CLUSTER_SUBNET = f"{HOST}/32"

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


PGBOUNCER = Path(shutil.which("pgbouncer") or "/usr/sbin/pgbouncer")
# A PgBouncer in front of each worker (docs/scale-out.md, "Worker connections"). The coordinator
# keeps its worker connections (one per backend, worker and tenant role: cheap PgBouncer client
# connections, no process); PgBouncer lends a tenant role's server connection to whichever
# coordinator backend runs that tenant's transaction, and caps the worker's backends at
# POOLER_SERVER_CONNECTIONS for the application database, closing the longest idle one of
# another role when a new role needs one (PgBouncer's evict_connection, max_db_connections).
POOLER_SERVER_CONNECTIONS = 150
POOLER_SETTINGS = {
    "pool_mode": "transaction",
    "max_client_conn": "20000",
    "default_pool_size": "4",  # per (database, role): one tenant's concurrent transactions
    "max_db_connections": str(POOLER_SERVER_CONNECTIONS),
    "server_idle_timeout": "60",
    "server_login_retry": "1",
    "server_connect_timeout": "5",
    "query_wait_timeout": "30",
    # The roles come and go with the tenants: PgBouncer looks each one up on the worker (as the
    # superuser) the first time it sees it; loopback trust, as the rest of this local cluster.
    "auth_type": "trust",
    "admin_users": SUPERUSER,  # the console (SHOW POOLS, SET): tests and operators
    "auth_user": SUPERUSER,
    "auth_query": "SELECT rolname, NULL::text FROM pg_catalog.pg_roles WHERE rolname = $1 AND rolcanlogin",
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


def _ipv6_loopback() -> bool:
    """Whether ::1 is usable here (the address of each node's connections to itself)."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


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

    def apply_hba(self, script: Path) -> None:
        """The deployment's pg_hba script for this kind of node (deploy/citus/*.sh, run at
        first initialisation in docker-compose.citus.yml), run here as there: as the server
        user, on this data directory, with 127.0.0.1 as the cluster's network (the nodes reach
        each other from it). One source of the rules for both (docs/scale-out.md,
        "Node-to-node authentication").

        In a deployment a node's connections to itself (Citus connects to
        `citus.local_hostname` as the current user, e.g. before every shard move) come from
        loopback, outside the cluster's network. Here both would be 127.0.0.1 and the rules
        for the node itself would go untested: the node's own connections use ::1 instead."""
        subprocess.run(
            _as_server_user(["sh", "-s"]),
            input=script.read_bytes(),
            env={**os.environ, "PGDATA": str(self.data_dir), "CLUSTER_SUBNET": CLUSTER_SUBNET},
            check=True,
            capture_output=True,
        )
        if _ipv6_loopback():
            with open(self.data_dir / "postgresql.conf", "a") as conf:
                conf.write(f"listen_addresses = '{HOST},::1'\ncitus.local_hostname = '::1'\n")

    def start(self) -> None:
        self.pg_ctl("start", "-w", "-l", str(self.data_dir / "server.log"))

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "fast", "-w")


@dataclass
class Pooler:
    """A PgBouncer (transaction pooling) in front of one worker, on its own port; the
    coordinator reaches the worker through it (pg_dist_poolinfo, `use_poolers`)."""

    work_dir: Path
    port: int
    worker: Node
    process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.work_dir / "pgbouncer.log"

    def configure(self) -> None:
        self.work_dir.mkdir(parents=True)
        (self.work_dir / "userlist.txt").write_text(f'"{SUPERUSER}" ""\n')
        settings = {
            **POOLER_SETTINGS,
            "listen_addr": HOST,
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_file": str(self.work_dir / "userlist.txt"),
            # Citus requires TLS on node connections (its `citus.node_conninfo` default,
            # sslmode=require, and a self-signed certificate made on each node by CREATE
            # EXTENSION): PgBouncer offers the worker's own certificate to the coordinator.
            "client_tls_sslmode": "require",
            "client_tls_cert_file": str(self.worker.data_dir / "server.crt"),
            "client_tls_key_file": str(self.worker.data_dir / "server.key"),
            "logfile": str(self.log),
            "pidfile": str(self.work_dir / "pgbouncer.pid"),
        }
        (self.work_dir / "pgbouncer.ini").write_text(
            f"[databases]\n* = host={HOST} port={self.worker.port}\n\n[pgbouncer]\n"
            + "".join(f"{name} = {value}\n" for name, value in settings.items())
        )
        if os.geteuid() == 0:
            for path in (self.work_dir, *self.work_dir.iterdir()):
                shutil.chown(path, SUPERUSER, SUPERUSER)

    def start(self) -> None:
        """Start PgBouncer and wait until it serves (PgBouncer refuses to run as root: as root,
        it runs as the server user)."""
        as_root = os.geteuid() == 0
        self.process = subprocess.Popen(
            [str(PGBOUNCER), str(self.work_dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=pwd.getpwnam(SUPERUSER).pw_uid if as_root else None,
            group=pwd.getpwnam(SUPERUSER).pw_gid if as_root else None,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with psycopg.connect(
                    f"host={HOST} port={self.port} user={SUPERUSER} dbname=postgres", connect_timeout=2
                ) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = self.log.read_text()[-2000:] if self.log.exists() else ""
                    raise RuntimeError(
                        f"pgbouncer in front of port {self.worker.port} did not start: {log}"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class CitusCluster:
    base_dir: Path
    coordinator: Node
    workers: list[Node] = field(default_factory=list)
    poolers: list[Pooler] = field(default_factory=list)

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
        for pooler in self.poolers:
            pooler.stop()
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


def worker_address(url: str) -> tuple[str, int]:
    """HOST, PORT of a node's URL: how the coordinator knows it (pg_dist_node)."""
    return _address(url)


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
    superuser roles`).

    The coordinator reaches the workers directly and keeps no worker connection between tenant
    transactions until `use_poolers` puts a PgBouncer in front of each (docs/scale-out.md)."""
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
        # out of connection slots (scripts/bench.py citus, 200 tenants). Without a pooler, the
        # runtime role's sessions keep none: a tenant transaction opens its worker connection.
        conn.execute(
            sql.SQL("ALTER ROLE {} SET citus.max_cached_conns_per_worker = 0").format(
                sql.Identifier(embedded_postgres.RUNTIME_ROLE)
            )
        )


def use_poolers(coordinator_url: str, poolers: dict[tuple[str, int], str]) -> None:
    """Route the coordinator's connections to each worker (HOST, PORT as joined) through the
    PgBouncer whose `host=... port=...` is given, with Citus's public `pg_dist_poolinfo`
    (docs/scale-out.md, "Worker connections").

    With the poolers in place the coordinator caches its worker connections again (Citus's
    default: one per backend, worker and role): they are PgBouncer client connections, which
    cost no worker process; the worker's processes are PgBouncer's server connections, bounded
    per database. Citus's own cap on connections per worker (`citus.max_shared_pool_size`,
    counted over the cached ones too) is switched off: with one cached connection per tenant
    role it would make a backend wait for a slot that only idle cached connections hold."""
    with psycopg.connect(_in_database(coordinator_url), autocommit=True) as conn:
        for (host, port), poolinfo in poolers.items():
            row = conn.execute(
                "SELECT nodeid FROM pg_dist_node WHERE nodename = %s AND nodeport = %s", (host, port)
            ).fetchone()
            if row is None:
                raise ValueError(f"no worker {host}:{port} in the cluster")
            conn.execute(
                "INSERT INTO pg_dist_poolinfo (nodeid, poolinfo) VALUES (%s, %s)"
                " ON CONFLICT (nodeid) DO UPDATE SET poolinfo = excluded.poolinfo",
                (row[0], poolinfo),
            )
        conn.execute(
            sql.SQL("ALTER ROLE {} RESET citus.max_cached_conns_per_worker").format(
                sql.Identifier(embedded_postgres.RUNTIME_ROLE)
            )
        )
        conn.execute("ALTER SYSTEM SET citus.max_shared_pool_size = -1")
        conn.execute("SELECT pg_reload_conf()")


def poolers_enabled() -> bool:
    """A PgBouncer in front of each worker, unless CITUS_POOLERS=0 (to compare with the design
    without them, scripts/bench.py citus) or PgBouncer is not installed."""
    return os.environ.get("CITUS_POOLERS", "1") != "0" and PGBOUNCER.exists()


def start(base_dir: Path, *, workers: int = 2, poolers: bool | None = None) -> CitusCluster:
    """Create, start and join a coordinator and `workers` workers under `base_dir`, each worker
    behind its own PgBouncer (`poolers`, by default `poolers_enabled()`)."""
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
        cluster.coordinator.apply_hba(COORDINATOR_HBA)
        for worker in cluster.workers:
            worker.apply_hba(WORKER_HBA)
        for node in cluster.nodes:
            node.start()
        form_cluster(cluster.coordinator.url(), [worker.url() for worker in cluster.workers])
        if poolers if poolers is not None else poolers_enabled():
            _start_poolers(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_poolers(cluster: CitusCluster) -> None:
    """A PgBouncer in front of each worker of a formed cluster (after CREATE EXTENSION made the
    worker's certificate), and the coordinator routed through them."""
    for index, worker in enumerate(cluster.workers, start=1):
        pooler = Pooler(cluster.base_dir / f"pgbouncer{index}", _free_port(), worker)
        cluster.poolers.append(pooler)
        pooler.configure()
        pooler.start()
    use_poolers(
        cluster.coordinator.url(),
        {(HOST, pooler.worker.port): f"host={HOST} port={pooler.port}" for pooler in cluster.poolers},
    )


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
    an operator upgrading from one server does: Citus preloaded, the coordinator's pg_hba
    (tenant roles refused at its door: they log in to the workers only), restarted. Its data
    is untouched; the extension and the workers come with `add_workers`."""
    with open(node.data_dir / "postgresql.conf", "a") as conf:
        conf.write("shared_preload_libraries = 'citus'\n")
    node.apply_hba(COORDINATOR_HBA)
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
            worker.apply_hba(WORKER_HBA)
            worker.start()
        form_cluster(coordinator.url(), [worker.url() for worker in cluster.workers])
        if poolers_enabled():
            _start_poolers(cluster)
    except BaseException:
        for pooler in cluster.poolers:
            pooler.stop()
        for worker in cluster.workers:
            try:
                worker.stop()
            except subprocess.CalledProcessError:
                pass  # never started
        raise
    return cluster
