"""gunicorn settings, from the environment: `gunicorn -c backend/gunicorn_conf.py 'backend:create_api()'`.

Every variable is listed in docs/operations.md ("Settings reference"). Decisions:
- gthread workers: a request that waits on PostgreSQL or streams an export holds a thread,
  not a process; the worker's heartbeat runs in its main thread, so a long export does not
  trip `timeout`. Size DB_POOL_SIZE + DB_POOL_MAX_OVERFLOW >= GUNICORN_THREADS.
- Graceful shutdown: on SIGTERM a worker stops accepting, finishes its requests for up to
  GUNICORN_GRACEFUL_TIMEOUT seconds, then is killed; the container's stop grace period must be
  longer (docker-compose.yml: 30 s for the default 20 s).
- X-Forwarded-Proto is honoured only from FORWARDED_ALLOW_IPS (gunicorn reads the same
  variable itself); the app applies the same list to X-Forwarded-For (backend/api/proxies.py).
- Logs: JSON lines through backend.core.logging, for the master too; gunicorn's own access
  log is off (it would print raw paths with their query strings): the app writes one JSON
  access line per request instead.
- Metrics: PROMETHEUS_MULTIPROC_DIR is always set before the workers start (a fresh
  temporary directory unless the operator names one, which is emptied at start), so /metrics
  sums the counters of every worker; a dead worker's live gauges are dropped.
"""

import os
import shutil
import tempfile
from pathlib import Path

from backend.core.logging import log_level


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = _int("WEB_CONCURRENCY", 2)
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 4)
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 20)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle a worker after this many requests (0: never), with jitter so they do not all restart
# together: bounds slow memory growth. Off by default.
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
# Heartbeat files on tmpfs in containers (/dev/shm): an overlay filesystem can stall them.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# Request line and headers are bounded here; the body by MAX_CONTENT_LENGTH in the app (413).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

accesslog = None
# gunicorn formats its access line whenever a logging config is given, even when the
# `gunicorn.access` logger drops it: the app writes its own line, so the class skips the work.
logger_class = "backend.gunicorn_logging.AppAccessLogger"
errorlog = "-"
loglevel = log_level().lower()
logconfig_dict = {
    "root": {"level": log_level(), "handlers": ["json"]},
    "loggers": {
        "gunicorn.error": {"level": log_level(), "handlers": [], "propagate": True},
        # logconfig_dict switches gunicorn's access log on; it would log raw paths and query strings.
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
    },
    "handlers": {
        "json": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["context"],
            "stream": "ext://sys.stderr",
        }
    },
    "formatters": {"json": {"()": "backend.core.logging.JsonLineFormatter"}},
    "filters": {"context": {"()": "backend.core.logging.LogContextFilter"}},
}

_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="saas-metrics-")
metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def on_starting(server) -> None:
    """Counters of a previous run would be summed with ours: start from an empty directory."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _own_metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
