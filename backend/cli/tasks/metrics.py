"""The worker's own figures (docs/jobs.md "Logs and metrics"): per task, how long a job waited
between being due and starting, how long it ran, and its attempts by outcome.

The API's /metrics cannot know these: a finished job's row (and its events) is deleted at once
(its arguments name people), so the figures are measured where the jobs run and served by each
worker process on WORKER_METRICS_PORT (Prometheus scrapes every worker; the API's /metrics keeps
the queue's depth, age and failed jobs, which live in the tables).
"""

from __future__ import annotations

import time
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)
# Seconds from due (deferred, or the retry's scheduled time) to the start of the attempt.
WAIT = Histogram(
    "saas_job_wait_seconds",
    "Seconds a job waited between being due and starting, by task",
    ["task"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)
RUN = Histogram(
    "saas_job_run_seconds",
    "Seconds an attempt ran, by task",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
    registry=REGISTRY,
)
ATTEMPTS = Counter(
    "saas_job_attempts",
    "Attempts by task and outcome (success; error: it raised, and is retried or failed)",
    ["task", "outcome"],
    registry=REGISTRY,
)

_DEFERRED_AT = (
    "SELECT max(at) AS at FROM procrastinate_events WHERE job_id = %(job_id)s AND type = 'deferred'"
)


async def measure(call_next, context, worker):
    """procrastinate worker middleware: times every attempt of every task, on the event loop."""
    job = context.job
    started = context.start_timestamp or time.time()
    due = job.scheduled_at
    if due is None:
        row = await context.app.connector.execute_query_one_async(_DEFERRED_AT, job_id=job.id)
        due = row["at"] if row else None
    if isinstance(due, datetime):
        WAIT.labels(job.task_name).observe(max(0.0, started - due.timestamp()))
    outcome = "error"
    try:
        result = await call_next()
        outcome = "success"
        return result
    finally:
        RUN.labels(job.task_name).observe(max(0.0, time.time() - started))
        ATTEMPTS.labels(job.task_name, outcome).inc()


def serve(port: int) -> None:
    """Serve the figures on `port` (0: not at all), in a thread of the worker process."""
    if port:
        start_http_server(port, registry=REGISTRY)
