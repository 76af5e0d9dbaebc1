"""Rate limits shared by every gunicorn worker through a real Redis-compatible store, and what
happens when that store is down (docs/security.md, "Rate limits").

The session starts Debian's `valkey-server` or `redis-server` (.ci/run installs it) on a free
port; without one these tests skip. Requests go over fresh connections to 2 workers, with the
client address in X-Forwarded-For (gunicorn's peer, 127.0.0.1, is a trusted proxy), so each
limit is shown to hold exactly whichever worker answers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.integration.identity.conftest import PASSWORD, signup_body
from tests.integration.ops.test_gunicorn import free_port, get, wait_for

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
STORE_SERVERS = ("valkey-server", "redis-server")


def _ping(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def store_url(tmp_path_factory):
    binary = next((path for name in STORE_SERVERS if (path := shutil.which(name))), None)
    if binary is None:
        pytest.skip("no valkey-server or redis-server installed (.ci/run installs redis-server)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("store")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _ping(port), f"{binary} to answer")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def start_gunicorn(  # the `app` fixture has migrated the database
    database, tmp_path, *, store: str, workers: int, limits: dict[str, str]
):
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": database["runtime"],
        "VAR_DIR": str(tmp_path / "var"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_THREADS": "2",
        "DB_POOL_SIZE": "2",
        "SPARE_SCHEMAS": "0",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "RATELIMIT_STORAGE_URI": store,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        **{f"RATE_LIMIT_{name.upper()}": value for name, value in limits.items()},
    }
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "backend/gunicorn_conf.py", "backend:create_api()"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: get(f"{base}/health")[0] == 200, "gunicorn to answer")
    return process, base, log_path


def stop(process) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def post(base: str, path: str, body: dict, address: str) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Forwarded-For": address},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # a new connection each time
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"{}")


def limited(answer) -> bool:
    status, headers, body = answer
    return status == 429 and body == {"detail": "rate_limited"} and int(headers["Retry-After"]) > 0


GENEROUS = "10000 per minute"
LIMITS = {
    "login_ip": "4 per minute",
    "login_account": "3 per minute",
    "login_account_ceiling": "5 per hour",
    "login_slowed": "1 per minute",
    "signup_ip": "2 per minute",
    "signup_account": GENEROUS,
    "verify_ip": "3 per minute",
    "verify_account": GENEROUS,
    "invitation_ip": GENEROUS,
    "invitation_account": "2 per minute",
}


def test_each_limit_holds_exactly_across_two_workers(app, database, tmp_path, store_url, ready_workspaces):
    import redis

    ready_workspaces(3)
    redis.Redis.from_url(store_url).flushdb()
    process, base, _ = start_gunicorn(database, tmp_path, store=store_url, workers=2, limits=LIMITS)
    try:
        # signup per address: 2 then 429
        signups = [post(base, "/api/v1/auth/signup", signup_body(), "10.20.0.1") for _ in range(3)]
        assert [status for status, _, _ in signups[:2]] == [201, 201]
        assert limited(signups[2])
        owner = signups[0][2]["user"]["email"]

        # login per address (every attempt): 4 then 429
        answers = [
            post(
                base, "/api/v1/auth/token", {"email": f"n{i}@example.com", "password": "p" * 12}, "10.20.0.2"
            )
            for i in range(5)
        ]
        assert [status for status, _, _ in answers[:4]] == [401] * 4 and limited(answers[4])

        # login failures per account and address: 3 then 429, the right password too; the
        # owner from another address is not locked out
        wrong = {"email": owner, "password": "wrong-password!"}
        answers = [post(base, "/api/v1/auth/token", wrong, "10.20.0.3") for _ in range(3)]
        assert [status for status, _, _ in answers] == [401] * 3
        assert limited(post(base, "/api/v1/auth/token", {"email": owner, "password": PASSWORD}, "10.20.0.3"))
        # the account's 4th and 5th failures, from new addresses, reach its ceiling (5 per hour)
        for address in ("10.20.0.4", "10.20.0.5"):
            assert post(base, "/api/v1/auth/token", wrong, address)[0] == 401
        # past the ceiling: one failure per address, then 429; the owner still logs in
        assert post(base, "/api/v1/auth/token", wrong, "10.20.0.6")[0] == 401
        assert limited(post(base, "/api/v1/auth/token", wrong, "10.20.0.6"))
        assert post(base, "/api/v1/auth/token", {"email": owner, "password": PASSWORD}, "10.20.0.7")[0] == 200

        # verification per address: 3 then 429
        answers = [
            post(base, "/api/v1/auth/verify", {"token": uuid.uuid4().hex}, "10.20.0.8") for _ in range(4)
        ]
        assert [status for status, _, _ in answers[:3]] == [401] * 3 and limited(answers[3])

        # one invitation token guessed from many addresses: 2 failures then 429
        guess = {"token": uuid.uuid4().hex, "password": PASSWORD}
        answers = [post(base, "/api/v1/auth/invitations/accept", guess, f"10.20.1.{i}") for i in range(3)]
        assert [status for status, _, _ in answers[:2]] == [401, 401] and limited(answers[2])
    finally:
        stop(process)
    # the counters are in the shared store, not in a worker's memory
    assert redis.Redis.from_url(store_url).keys("LIMITS*")


def test_store_down_limits_fall_back_to_worker_memory_and_login_stays_up(
    app, database, tmp_path, ready_workspaces
):
    ready_workspaces(1)
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"
    process, base, log_path = start_gunicorn(
        database, tmp_path, store=nothing_listens, workers=1, limits=LIMITS | {"signup_ip": GENEROUS}
    )
    try:
        status, _, account = post(base, "/api/v1/auth/signup", signup_body(), "10.30.0.1")
        assert status == 201
        email = account["user"]["email"]
        started = time.monotonic()
        wrong = {"email": email, "password": "wrong-password!"}
        answers = [post(base, "/api/v1/auth/token", wrong, "10.30.0.2") for _ in range(4)]
        assert [status for status, _, _ in answers[:3]] == [401] * 3 and limited(answers[3])
        assert post(base, "/api/v1/auth/token", {"email": email, "password": PASSWORD}, "10.30.0.3")[0] == 200
        assert time.monotonic() - started < 20  # short store timeouts: no request hangs on it
    finally:
        stop(process)
    assert "falling back to in-memory storage" in log_path.read_text()
