"""JSON logs, one object per line, on stderr.

Every line has `ts` (ISO 8601, UTC), `level`, `logger` and `message`. Inside a request, the
context providers registered by the api layer add `request_id`, `tenant_id` and `user_id`
to every line, whatever module logs it; core itself knows nothing of flask.

gunicorn's own loggers use the same formatter and filter (backend/gunicorn_conf.py), so the
master process and the workers speak one format.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Mapping

from pythonjsonlogger.json import JsonFormatter

ContextProvider = Callable[[], Mapping[str, object]]
_context_providers: list[ContextProvider] = []


class JsonLineFormatter(JsonFormatter):
    """`{"ts": ..., "level": ..., "logger": ..., "message": ..., <extra fields>}`."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="ts",
        )

    def process_log_record(self, log_data: dict) -> dict:
        if str(log_data.get("logger", "")).startswith("procrastinate"):
            _redact_job_arguments(log_data)
        # The timestamp first: lines read well in a terminal and sort as text.
        return {"ts": log_data.pop("ts", None), **log_data}


# procrastinate's lines name a job by its call, `task[id](email='...')`: keep `task[id]`.
_JOB_CALL = re.compile(r"(\w+\[\d+\])\(.*\)")


def _redact_job_arguments(log_data: dict) -> None:
    """The job queue's own log lines carry each job's arguments (a mail job's address), in the
    message and in the `job`/`jobs` fields: they go, the task name and job id stay."""
    if isinstance(log_data.get("message"), str):
        log_data["message"] = _JOB_CALL.sub(r"\1(...)", log_data["message"])
    for name in ("job", "jobs"):
        value = log_data.get(name)
        for job in value if isinstance(value, list) else [value]:
            if isinstance(job, dict):
                # `task_kwargs` in procrastinate 3, `args` before it.
                for key in ("task_kwargs", "args", "call_string"):
                    job.pop(key, None)


class LogContextFilter(logging.Filter):
    """Adds the fields of the registered context providers (request id, tenant, user)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for provider in _context_providers:
            for name, value in provider().items():
                if value is not None and not hasattr(record, name):
                    setattr(record, name, value)
        return True


def add_context_provider(provider: ContextProvider) -> None:
    """Register a callable whose fields go into every log line (idempotent)."""
    if provider not in _context_providers:
        _context_providers.append(provider)


def log_level(env: Mapping[str, str] | None = None) -> str:
    """LOG_LEVEL (DEBUG, INFO, WARNING, ERROR), INFO by default."""
    value = (os.environ if env is None else env).get("LOG_LEVEL", "INFO").upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {value!r}")
    return value


def json_handler(stream=None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(LogContextFilter())
    return handler


def configure_logging(level: int | str | None = None) -> None:
    """Send every logger's records to one JSON handler on the root logger.

    Idempotent: a root handler that already formats JSON (ours, or the one gunicorn's
    logconfig_dict installed in the master before forking) is kept as it is."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonLineFormatter) for h in root.handlers):
        root.addHandler(json_handler())
    root.setLevel(level or log_level())
    # No line carries the thread, the process id or the multiprocessing process name (the
    # format is `ts level logger message` and the fields passed): the logging module's public
    # switches spare every record looking them up (Python's logging HOWTO, "Optimization").
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # Alembic says "Context impl PostgresqlImpl." at every readiness probe and a line per
    # tenant during a fleet migration (whose command prints its own progress): debug only.
    debugging = root.getEffectiveLevel() <= logging.DEBUG
    logging.getLogger("alembic").setLevel(logging.DEBUG if debugging else logging.WARNING)
    # procrastinate announces its built-in tasks whenever the job app is built (every process,
    # every command): a line of noise before a command's one-line answer, debug only.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.DEBUG if debugging else logging.WARNING)
