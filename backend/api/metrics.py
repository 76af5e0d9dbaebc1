"""Prometheus metrics at `GET /metrics`, for a bearer METRICS_TOKEN only.

- Requests: `saas_http_requests_total` and `saas_http_request_duration_seconds` by method,
  route (the URL rule, never the raw path) and status.
- Pools: `saas_db_pool_checked_out` and `saas_db_pool_size` of the runtime engine (the API holds no other).
- Access cache: `saas_access_cache_lookups_total` by result (hit, miss: a registry query),
  defined beside the cache (api/access_cache.py).
- Fleet: `saas_tenants` by status and `saas_tenant_migrations` by result (at_head, pending,
  failed), from one GROUP BY on the registry, and `saas_spare_schemas` (ready, stale) from the
  pool of spare schemas; cached a few seconds so that scrapes stay cheap.
- Job queue (docs/jobs.md): `saas_jobs` by queue and status (todo, doing, failed: a failed job
  stays in the table until retried or cleared; succeeded ones are deleted) and
  `saas_jobs_oldest_waiting_seconds` by queue (how long the oldest due job has waited for a
  worker: a stuck or missing worker shows here first), `saas_jobs_failed` and
  `saas_jobs_longest_running_seconds` by task (a failing or hanging task), from the same cached
  read. The latency and run time of finished jobs are the worker's own figures (its rows are
  deleted on success): `saas_job_wait_seconds`, `saas_job_run_seconds`, `saas_job_attempts` on
  the worker's WORKER_METRICS_PORT (backend/cli/tasks/metrics.py).

The endpoint is on the API port but closed: without METRICS_TOKEN it answers 404, without
the right bearer token 401 (constant-time comparison). Under gunicorn every worker has its
own counters; with PROMETHEUS_MULTIPROC_DIR set (gunicorn_conf.py always sets it) they are
kept in files there and summed at scrape time, so any worker answers for all of them.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections import Counter as Tally
from dataclasses import dataclass, field

from flask import Blueprint, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import event, false, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from backend.api.context import runtime
from backend.api.errors import error_response
from backend.domain.tenants import TenantStatus
from backend.infrastructure.migrations import head_revision
from backend.infrastructure.sql.spares import spare_schemas
from backend.infrastructure.sql.tenants import tenants

log = logging.getLogger(__name__)

FLEET_CACHE_TTL_S = 5.0
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MIGRATION_RESULTS = ("at_head", "pending", "failed")
SPARE_STATES = ("ready", "stale")

REQUESTS = Counter("saas_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "saas_http_request_duration_seconds",
    "Time from the request to the response headers",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
# livesum: in multi-process mode, the sum over the workers that are alive.
POOL_CHECKED_OUT = Gauge(
    "saas_db_pool_checked_out",
    "Connections checked out of the pool",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "saas_db_pool_size",
    "Configured pool size (without overflow)",
    ["pool"],
    multiprocess_mode="livesum",
)

blueprint = Blueprint("metrics", __name__)


# The labelled series of each (method, route, status), looked up once: `labels()` takes a lock
# and builds the key on every call. Bounded: methods are a closed set (KNOWN_METHODS), routes
# the URL rules, statuses the ones the app answers.
_request_series: dict[tuple[str, str, int], tuple] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method if method in KNOWN_METHODS else "other", route, status)
    series = _request_series.get(key)
    if series is None:
        labels = (key[0], route, str(status))
        series = _request_series.setdefault(key, (REQUESTS.labels(*labels), LATENCY.labels(*labels)))
    series[0].inc()
    series[1].observe(seconds)


def instrument_pool(engine: Engine, name: str) -> None:
    """Keep the pool gauges current from the pool's own checkout/checkin events."""
    pool = engine.pool
    if not hasattr(pool, "checkedout"):
        return
    POOL_SIZE.labels(name).set(pool.size())
    gauge = POOL_CHECKED_OUT.labels(name)

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy):
        gauge.set(pool.checkedout())

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record):
        # Fired before the connection is back in the queue: it still counts as checked out.
        gauge.set(max(pool.checkedout() - 1, 0))


@dataclass
class FleetCounts:
    by_status: Tally = field(default_factory=Tally)
    by_migration: Tally = field(default_factory=Tally)
    spares: Tally = field(default_factory=Tally)  # ready (at the tenant head) or stale
    jobs: Tally = field(default_factory=Tally)  # (queue, status) -> jobs
    oldest_waiting_s: dict = field(default_factory=dict)  # queue -> seconds
    failed_by_task: dict = field(default_factory=dict)  # task -> failed jobs
    longest_running_s: dict = field(default_factory=dict)  # task -> seconds its oldest attempt runs


# Column grants only (privileges.py): the API reads no job's arguments.
JOB_COUNTS = text(
    "SELECT queue_name, status::text, count(*) FROM jobs.procrastinate_jobs"
    " WHERE status IN ('todo', 'doing', 'failed') GROUP BY queue_name, status"
)
OLDEST_WAITING = text(
    "SELECT j.queue_name, extract(epoch FROM now() - min(e.at))"
    " FROM jobs.procrastinate_jobs j JOIN jobs.procrastinate_events e ON e.job_id = j.id"
    " WHERE j.status = 'todo' AND e.type = 'deferred'"
    " AND (j.scheduled_at IS NULL OR j.scheduled_at <= now()) GROUP BY j.queue_name"
)
# Per task: failed jobs (they stay until retried or cleared) and how long the longest running
# attempt has run (a stuck task, or one whose worker died, shows here).
JOBS_BY_TASK = text(
    "SELECT j.task_name, count(DISTINCT j.id) FILTER (WHERE j.status = 'failed'),"
    " extract(epoch FROM now() - min(e.at))"
    " FROM jobs.procrastinate_jobs j LEFT JOIN jobs.procrastinate_events e"
    " ON e.job_id = j.id AND e.type = 'started' AND j.status = 'doing'"
    " WHERE j.status IN ('doing', 'failed') GROUP BY j.task_name"
)
JOB_STATES = ("todo", "doing", "failed")


class FleetCollector:
    """Tenants by status and by migration result, read from the registry at most every
    FLEET_CACHE_TTL_S seconds; a registry that cannot be read gives no fleet samples (and a
    log line), never a failed scrape."""

    def __init__(self, engine: Engine, ttl_s: float = FLEET_CACHE_TTL_S) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._counts: FleetCounts | None = None
        self._read_at = 0.0

    def counts(self) -> FleetCounts | None:
        with self._lock:
            if self._counts is None or time.monotonic() - self._read_at > self._ttl_s:
                try:
                    self._counts = self._read()
                    self._read_at = time.monotonic()
                except SQLAlchemyError as error:
                    log.warning("metrics: tenant registry unreadable: %s", type(error).__name__)
                    return None
            return self._counts

    def _read(self) -> FleetCounts:
        head = head_revision("tenant")
        at_head = func.coalesce(tenants.c.schema_version == head, false())
        failed = tenants.c.last_migration_error.is_not(None)
        query = select(
            tenants.c.status, at_head.label("at_head"), failed.label("failed"), func.count()
        ).group_by(tenants.c.status, at_head, failed)
        ready = spare_schemas.c.revision == head
        spares = select(ready, func.count()).group_by(ready)
        counts = FleetCounts()
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
            for is_ready, count in connection.execute(spares):
                counts.spares["ready" if is_ready else "stale"] += count
            for queue, status, count in connection.execute(JOB_COUNTS):
                counts.jobs[(queue, status)] += count
            counts.oldest_waiting_s = {queue: float(age) for queue, age in connection.execute(OLDEST_WAITING)}
            for task, failed_jobs, running_s in connection.execute(JOBS_BY_TASK):
                counts.failed_by_task[task] = failed_jobs
                if running_s is not None:
                    counts.longest_running_s[task] = float(running_s)
            connection.rollback()
        for status, is_at_head, is_failed, count in rows:
            counts.by_status[status] += count
            if status == TenantStatus.DELETED:
                continue  # a purged tenant has no schema left to migrate
            result = "failed" if is_failed else "at_head" if is_at_head else "pending"
            counts.by_migration[result] += count
        return counts

    def collect(self):
        counts = self.counts()
        if counts is None:
            return
        by_status = GaugeMetricFamily("saas_tenants", "Tenants in the registry", labels=["status"])
        for status in TenantStatus:
            by_status.add_metric([status.value], counts.by_status[status.value])
        yield by_status
        migrations = GaugeMetricFamily(
            "saas_tenant_migrations",
            "Tenant schemas by the result of their last migration (deleted tenants excluded)",
            labels=["result"],
        )
        for result in MIGRATION_RESULTS:
            migrations.add_metric([result], counts.by_migration[result])
        yield migrations
        spares = GaugeMetricFamily(
            "saas_spare_schemas",
            "Spare tenant schemas: ready (at the tenant head) for signups to claim, or stale",
            labels=["state"],
        )
        for state in SPARE_STATES:
            spares.add_metric([state], counts.spares[state])
        yield spares
        jobs = GaugeMetricFamily(
            "saas_jobs", "Jobs by queue and status (todo, doing, failed)", labels=["queue", "status"]
        )
        for (queue, status), count in sorted(counts.jobs.items()):
            jobs.add_metric([queue, status], count)
        yield jobs
        waiting = GaugeMetricFamily(
            "saas_jobs_oldest_waiting_seconds",
            "Age of the oldest job due and not yet taken by a worker, by queue",
            labels=["queue"],
        )
        for queue, age in sorted(counts.oldest_waiting_s.items()):
            waiting.add_metric([queue], age)
        yield waiting
        failed = GaugeMetricFamily(
            "saas_jobs_failed",
            "Failed jobs (retries exhausted) waiting for an operator, by task",
            labels=["task"],
        )
        for task, count in sorted(counts.failed_by_task.items()):
            failed.add_metric([task], count)
        yield failed
        running = GaugeMetricFamily(
            "saas_jobs_longest_running_seconds",
            "How long the longest running attempt of each task has been running",
            labels=["task"],
        )
        for task, age in sorted(counts.longest_running_s.items()):
            running.add_metric([task], age)
        yield running


def exposition(fleet: FleetCollector) -> bytes:
    """Every worker's metrics (multi-process mode) or this process's, then the fleet's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        workers = CollectorRegistry()
        MultiProcessCollector(workers)
        body = generate_latest(workers)
    else:
        body = generate_latest(REGISTRY)
    fleet_registry = CollectorRegistry()
    fleet_registry.register(fleet)
    return body + generate_latest(fleet_registry)


def authorized() -> Response | None:
    """None when the bearer token matches METRICS_TOKEN, else the refusal to send."""
    expected = runtime().settings.metrics_token
    if not expected:
        return error_response(404, "not_found")
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if not value.strip():
        return error_response(401, "missing_token")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), expected.encode()):
        return error_response(401, "invalid_token")
    return None


@blueprint.get("/metrics")
def metrics():
    """Prometheus text format, for the bearer METRICS_TOKEN only."""
    refusal = authorized()
    if refusal is not None:
        return refusal
    body = exposition(current_app.extensions["saas.fleet_metrics"])
    return Response(body, mimetype=None, content_type=CONTENT_TYPE_LATEST)


def init_app(app) -> None:
    rt = app.extensions["saas"]
    instrument_pool(rt.engine, "runtime")
    app.extensions["saas.fleet_metrics"] = FleetCollector(rt.engine)
    app.register_blueprint(blueprint)
