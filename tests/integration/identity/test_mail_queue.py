"""Mail through the queue: a delivery failure in the worker is retried later with backoff,
not lost and not an error in the request (issue 14 item 3)."""

from __future__ import annotations

from sqlalchemy import text

from backend.cli.tasks import mail as mail_tasks
from backend.domain.errors import Unavailable
from tests.owner import owner_engine


class RefusingMailer:
    def __init__(self) -> None:
        self.attempts = 0

    def send(self, *, to: str, subject: str, body: str) -> None:
        self.attempts += 1
        raise Unavailable("mail_unavailable")


def test_a_failed_delivery_is_retried_later(client, signup, runtime, run_jobs, monkeypatch):
    _, body = signup()
    run_jobs()  # the signup's own verification mail goes out
    refusing = RefusingMailer()
    monkeypatch.setattr(mail_tasks, "mailer_for", lambda settings: refusing)
    response = client.post("/api/v1/auth/verify/resend", json={"email": body["email"]})
    assert response.status_code == 202
    run_jobs()
    assert refusing.attempts == 1
    with owner_engine().begin() as connection:
        job = connection.execute(
            text(
                "SELECT id, status::text, attempts, scheduled_at > now() AS later"
                " FROM jobs.procrastinate_jobs WHERE task_name = 'resend_verification'"
                " AND args->>'email' = :email"
            ),
            {"email": body["email"]},
        ).one()
        assert (job.status, job.attempts, job.later) == ("todo", 1, True)
        connection.execute(text("DELETE FROM jobs.procrastinate_jobs WHERE id = :id"), {"id": job.id})
