"""A real PgBouncer (Debian's `pgbouncer`, installed by .ci/run) in transaction mode in front
of the test PostgreSQL, started and stopped by the test session on a free port. Where it is
not installed the tests here skip, saying so in one line."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from backend.core.db import sqlalchemy_url

SERVER_CONNECTIONS = 2  # per database alias: fewer than the clients the tests open
BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@dataclass(frozen=True)
class Bouncer:
    port: int
    runtime_url: str  # `saas` alias: SERVER_CONNECTIONS server connections
    owner_url: str
    single_url: str  # `saas_single` alias: one server connection, for leak tests
    admin_url: str
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def target(url: str) -> tuple[str, int, str]:
    """host (a socket directory or a host name), port, database of a libpq-style URL."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    return info.get("host") or "/tmp", int(info.get("port") or 5432), info["dbname"]


def through(url: str, port: int, database: str) -> str:
    parsed = make_url(sqlalchemy_url(url))
    return (
        parsed.set(host="127.0.0.1", port=port, database=database, query={})
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def pgbouncer(database) -> Bouncer:
    if not Path(BINARY).is_file():
        pytest.skip("pgbouncer is not installed (Debian package `pgbouncer`, installed by .ci/run)")
    host, server_port, dbname = target(database["owner"])
    work = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    users = {}
    for url in (database["runtime"], database["owner"]):
        parsed = make_url(sqlalchemy_url(url))
        users[parsed.username] = parsed.password or ""
    port = free_port()
    (work / "userlist.txt").write_text("".join(f'"{u}" "{p}"\n' for u, p in users.items()))
    server = f"host={host} port={server_port} dbname={dbname}"
    (work / "pgbouncer.ini").write_text(
        f"""[databases]
{dbname} = {server} pool_size={SERVER_CONNECTIONS}
{dbname}_single = {server} pool_size=1

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {work}/userlist.txt
admin_users = {", ".join(users)}
pool_mode = transaction
max_client_conn = 200
server_login_retry = 1
logfile = {work}/pgbouncer.log
pidfile = {work}/pgbouncer.pid
"""
    )
    owner = None
    if os.geteuid() == 0:  # PgBouncer refuses root: run it as the owner of the server's socket
        stat = Path(host).stat() if host.startswith("/") else None
        owner = (
            (stat.st_uid, stat.st_gid)
            if stat
            else (pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)
        )
        for path in (work, *work.iterdir()):
            os.chown(path, *owner)
    process = subprocess.Popen(
        [BINARY, str(work / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        user=owner[0] if owner else None,
        group=owner[1] if owner else None,
    )
    runtime_user = make_url(sqlalchemy_url(database["runtime"])).username
    bouncer = Bouncer(
        port=port,
        runtime_url=through(database["runtime"], port, dbname),
        owner_url=through(database["owner"], port, dbname),
        single_url=through(database["runtime"], port, f"{dbname}_single"),
        admin_url=f"postgresql://{runtime_user}@127.0.0.1:{port}/pgbouncer",
        log=work / "pgbouncer.log",
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with psycopg.connect(bouncer.runtime_url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            break
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log = bouncer.log.read_text() if bouncer.log.exists() else process.stderr.read().decode()
                raise RuntimeError(f"pgbouncer did not start: {log[-2000:]}") from None
            time.sleep(0.1)
    yield bouncer
    process.terminate()
    process.wait(timeout=20)
    shutil.rmtree(work, ignore_errors=True)
