"""gunicorn with backend/gunicorn_conf.py, as `make run` and the image start it: JSON lines
from master and workers, /metrics summed over the workers, a dead worker's gauges dropped,
and a graceful stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
TOKEN = "gunicorn-test-metrics-token"
POOL_SIZE = 3
WORKERS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(condition, what: str, attempts: int = 300):
    """Poll (at most ~60 s); the value is never a measured time, only reached or not."""
    for _ in range(attempts):
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what}")


def pool_size(base: str) -> float:
    status, body = get(f"{base}/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "saas_db_pool_size" and sample.labels == {"pool": "runtime"}:
                return sample.value
    return 0.0


@pytest.fixture()
def server(app, database, tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"stale junk from a previous run")
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": database["runtime"],
        "VAR_DIR": str(tmp_path / "var"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_THREADS": "2",
        "DB_POOL_SIZE": str(POOL_SIZE),
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
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
    try:
        wait_for(lambda: get(f"{base}/health")[0] == 200, "gunicorn to answer")
        yield process, base, log_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_gunicorn_logs_json_sums_metrics_and_stops_gracefully(server):
    process, base, log_path = server

    # every worker's pool gauge is summed: livesum over the live workers (the junk file is gone)
    wait_for(lambda: pool_size(base) == WORKERS * POOL_SIZE, "both workers in /metrics")
    status, body = get(f"{base}/metrics", {"Authorization": f"Bearer {TOKEN}"})
    text = body.decode()
    assert "python_gc_objects_collected_total" not in text  # the multi-process collector answered
    assert get(f"{base}/metrics")[0] == 401

    # a killed worker is replaced and its live gauges dropped (child_exit -> mark_process_dead)
    victim = psutil.Process(process.pid).children()[0]
    victim.kill()
    wait_for(
        lambda: len([c for c in psutil.Process(process.pid).children() if c.pid != victim.pid]) == WORKERS,
        "a replacement worker",
    )
    wait_for(lambda: pool_size(base) == WORKERS * POOL_SIZE, "the dead worker's gauges dropped")

    status, _ = get(f"{base}/health/ready?email=alice@example.com", {"X-Request-ID": "gunicorn-req-1"})
    assert status == 200

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert any(
        line["logger"] == "gunicorn.error" and line["message"].startswith("Starting gunicorn")
        for line in lines
    )
    (access,) = [
        line
        for line in lines
        if line["logger"] == "backend.access" and line.get("request_id") == "gunicorn-req-1"
    ]
    assert access["route"] == "/health/ready" and access["status"] == 200
    assert "alice@example.com" not in log_path.read_text()
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
