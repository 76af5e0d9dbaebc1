"""The job queue: procrastinate on the shared database, its tables in the schema `jobs`.

Two sides use it. The API only enqueues (`ProcrastinateJobQueue.enqueue`, as the runtime role: INSERT on
the jobs table, nothing else; backend/infrastructure/sql/privileges.py); the worker process
(`flask --app backend worker`, backend/cli/worker.py) takes and runs the jobs as the owner role.
Tasks are named, not imported, here: their code is in the cli layer, where use cases may be
called, and the API defers them by name (docs/jobs.md).
"""

from __future__ import annotations

import threading
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.engine import make_url

JOBS_SCHEMA = "jobs"
# procrastinate's SQL names its tables without a schema: its connections look in `jobs` only.
_OPTIONS = f"-c search_path={JOBS_SCHEMA},pg_catalog"


def _connection_kwargs(url: str) -> dict[str, Any]:
    # libpq takes postgresql://, not SQLAlchemy's postgresql+psycopg:// the settings may carry.
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return {"conninfo": conninfo, "kwargs": {"options": _OPTIONS}}


def worker_app(conninfo: str) -> procrastinate.App:
    """The worker's app (async pool); tasks are registered on it by backend/cli/worker.py."""
    return procrastinate.App(connector=procrastinate.PsycopgConnector(**_connection_kwargs(conninfo)))


class ProcrastinateJobQueue:
    """Enqueues jobs by task name from synchronous code (the API's requests).

    Every enqueue is one INSERT of the same shape whatever the arguments say, so a route
    that enqueues on every path answers in the same time on every path."""

    def __init__(self, conninfo: str, *, max_size: int = 4) -> None:
        connector = procrastinate.SyncPsycopgConnector(
            **_connection_kwargs(conninfo), min_size=0, max_size=max_size
        )
        self._app = procrastinate.App(connector=connector)
        self._opened = False
        self._lock = threading.Lock()

    def enqueue(
        self, task_name: str, *, queue: str = "default", queueing_lock: str | None = None, **arguments: Any
    ) -> int | None:
        """The job's id; None when `queueing_lock` is given and a job holding that lock is
        already waiting (procrastinate's queueing lock: that job will do the work)."""
        with self._lock:
            if not self._opened:
                self._app.open()
                self._opened = True
        task = self._app.configure_task(
            name=task_name, allow_unknown=True, queue=queue, queueing_lock=queueing_lock
        )
        try:
            return task.defer(**arguments)
        except AlreadyEnqueued:
            return None

    def close(self) -> None:
        if self._opened:
            self._app.close()
            self._opened = False
