"""The worker's own figures (docs/jobs.md): per task, the wait from due to start, the run time
and the attempts by outcome, measured around every attempt and served on WORKER_METRICS_PORT."""

from __future__ import annotations

import urllib.request

from backend.cli.tasks import mail as mail_tasks
from backend.cli.tasks import metrics as job_metrics
from backend.domain.errors import Unavailable
from tests.integration.ops.test_gunicorn import free_port
from tests.owner import owner_engine

TASK = "resend_verification"


def sample(name: str, **labels) -> float:
    return job_metrics.REGISTRY.get_sample_value(name, labels) or 0.0


class RefusingMailer:
    def send(self, *, to: str, subject: str, body: str) -> None:
        raise Unavailable("mail_unavailable")


def test_every_attempt_is_timed_and_counted_by_task_and_outcome(
    client, runtime, run_jobs, monkeypatch, ready_workspaces
):
    ready_workspaces(1)  # the signup below claims a workspace the worker built
    run_jobs()  # what earlier tests left in the queue runs first: the counts below are ours
    before = {
        "success": sample("saas_job_attempts_total", task=TASK, outcome="success"),
        "error": sample("saas_job_attempts_total", task=TASK, outcome="error"),
        "waits": sample("saas_job_wait_seconds_count", task=TASK),
        "runs": sample("saas_job_run_seconds_count", task=TASK),
    }
    # Nobody has this address: the job runs and mails nothing (success).
    client.post("/api/v1/auth/verify/resend", json={"email": "nobody-metrics@example.com"})
    run_jobs()
    assert sample("saas_job_attempts_total", task=TASK, outcome="success") == before["success"] + 1
    assert sample("saas_job_wait_seconds_count", task=TASK) == before["waits"] + 1
    assert sample("saas_job_run_seconds_count", task=TASK) == before["runs"] + 1

    signed = client.post(
        "/api/v1/auth/signup",
        json={
            "email": "metrics-refused@example.com",
            "password": "correct-horse-battery",
            "name": "M",
            "workspace_name": "Metrics refused",
        },
    )
    assert signed.status_code == 201
    monkeypatch.setattr(mail_tasks, "mailer_for", lambda settings: RefusingMailer())
    run_jobs()
    assert sample("saas_job_attempts_total", task=TASK, outcome="error") == before["error"] + 1
    with owner_engine().begin() as connection:
        connection.exec_driver_sql(
            "DELETE FROM jobs.procrastinate_jobs WHERE task_name = 'resend_verification' AND status = 'todo'"
        )


def test_the_figures_are_served_on_the_workers_port():
    port = free_port()
    job_metrics.serve(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    assert "saas_job_run_seconds" in body and "saas_job_attempts_total" in body
