"""What the identity use cases share: opaque secrets, mail delivery, the public user."""

from __future__ import annotations

import hashlib
import logging
import secrets

from backend.domain.errors import Unavailable
from backend.domain.identity import User
from backend.service.ports import JobQueue, Mailer

log = logging.getLogger(__name__)


def token_digest(value: str) -> bytes:
    """What is stored for a one-time or refresh token: its SHA-256, never the token."""
    return hashlib.sha256(value.encode("utf-8")).digest()


def new_secret() -> tuple[str, bytes]:
    """A 256-bit URL-safe random token and its digest."""
    value = secrets.token_urlsafe(32)
    return value, token_digest(value)


def send(mailer: Mailer, *, to: str, subject: str, body: str) -> None:
    """Mail after the commit; a delivery failure is logged (never the body) and the user can
    ask again (resend the verification, re-invite)."""
    try:
        mailer.send(to=to, subject=subject, body=body)
    except Unavailable:
        log.warning("mail not delivered", extra={"subject": subject})


# Mail goes through the job queue (docs/jobs.md): the request enqueues, the worker delivers
# and retries. A job carries no secret: a mail with a link is enqueued as "mail X a link",
# and the worker draws the token (only its digest is ever stored), so the queue's rows never
# hold a live link.
MAIL_QUEUE = "mail"
SEND_NOTICE_TASK = "send_notice"


def queue_notice(jobs: JobQueue, *, to: str, subject: str, body: str, request_id: str | None = None) -> None:
    """Enqueues a plain notice (no link, no secret) for the worker to deliver (`send_notice`)."""
    jobs.enqueue(SEND_NOTICE_TASK, queue=MAIL_QUEUE, to=to, subject=subject, body=body, request_id=request_id)


def public(user: User) -> User:
    """The user without the password hash."""
    return User(user.id, user.email, user.name, user.verified_at, user.created_at)
