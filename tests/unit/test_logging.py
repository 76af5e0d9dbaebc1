"""JSON lines: timestamp first, level, logger, message, extra fields and context fields."""

from __future__ import annotations

import io
import json
import logging

import pytest

from backend.core import logging as core_logging


def emit(message: str, **extra) -> dict:
    stream = io.StringIO()
    logger = logging.getLogger("tests.unit.logging")
    handler = core_logging.json_handler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(message, extra=extra)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    (line,) = stream.getvalue().splitlines()
    return json.loads(line)


def test_one_json_object_per_line_with_timestamp_first():
    record = emit("hello\nworld", route="/x")
    assert list(record)[:4] == ["ts", "level", "logger", "message"]
    assert record["level"] == "WARNING"
    assert record["message"] == "hello\nworld"  # escaped inside the one line
    assert record["route"] == "/x"


def test_context_providers_add_fields_but_never_override_explicit_ones(monkeypatch):
    monkeypatch.setattr(core_logging, "_context_providers", [])
    core_logging.add_context_provider(lambda: {"request_id": "ctx", "tenant_id": None})
    record = emit("a")
    assert record["request_id"] == "ctx"
    assert "tenant_id" not in record
    assert emit("b", request_id="explicit")["request_id"] == "explicit"


def test_log_level_comes_from_the_environment():
    assert core_logging.log_level({}) == "INFO"
    assert core_logging.log_level({"LOG_LEVEL": "debug"}) == "DEBUG"
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        core_logging.log_level({"LOG_LEVEL": "chatty"})


def test_job_queue_lines_keep_task_and_id_but_not_the_arguments():
    """procrastinate logs each job's call (a mail job's address) in its message and fields."""
    stream = io.StringIO()
    logger = logging.getLogger("procrastinate.worker")
    handler = core_logging.json_handler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    level = logger.level
    logger.setLevel(logging.INFO)
    job = {"id": 7, "task_name": "resend_verification", "args": {"email": "ann@example.com"}}
    try:
        logger.info(
            "Job resend_verification[7](email='ann@example.com', request_id=None) ended with status: Success",
            extra={"job": {**job, "call_string": "resend_verification[7](email='ann@example.com')"}},
        )
        logger.info("Deferred 1 job", extra={"jobs": [dict(job)]})
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(level)
    ended, deferred = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "ann@example.com" not in stream.getvalue()
    assert ended["message"] == "Job resend_verification[7](...) ended with status: Success"
    assert ended["job"] == {"id": 7, "task_name": "resend_verification"}
    assert deferred["jobs"] == [{"id": 7, "task_name": "resend_verification"}]


def test_records_do_not_look_up_what_no_line_shows():
    """configure_logging switches off the thread, process and multiprocessing lookups of every
    record: the JSON line never carried them."""
    import logging

    from backend.core.logging import configure_logging

    configure_logging()
    record = logging.getLogger("backend.test").makeRecord(
        "backend.test", logging.INFO, "f", 1, "m", None, None
    )
    assert record.thread is None and record.process is None and record.processName is None


def test_job_queue_lines_drop_the_arguments_of_procrastinates_own_job_context():
    """The fields procrastinate really logs (Job.log_context() of the pinned version: in 3.x the
    arguments are `task_kwargs`), not a hand-made dict: a new key there would leak an address."""
    from procrastinate.jobs import Job

    job = Job(id=9, queue="mail", lock=None, queueing_lock=None, task_name="send_notice",
              task_kwargs={"to": "ann@example.com", "subject": "s", "body": "b"})  # fmt: skip
    stream = io.StringIO()
    logger = logging.getLogger("procrastinate.worker")
    handler = core_logging.json_handler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        logger.info(f"Job {job.call_string} ended", extra={"job": job.log_context()})
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(level)
    line = json.loads(stream.getvalue())
    assert "ann@example.com" not in stream.getvalue(), line
    assert line["job"]["id"] == 9 and line["job"]["task_name"] == "send_notice"
