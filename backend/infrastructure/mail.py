"""Outgoing mail: SMTP in production, one file per message in development and tests.

The file backend writes `<mail_dir>/<time>-<id>.eml` (an RFC 5322 message, mode 0600) and
nothing else: tests and developers read the link from it. Neither backend logs a message
body, which carries one-time tokens.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import time
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from backend.core.config import Settings
from backend.domain.errors import Unavailable

log = logging.getLogger(__name__)
SMTP_TIMEOUT_S = 10


def _message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    # No quoted-printable: the link (`token=<value>`) stays intact in the raw message.
    message.set_content(body, cte="7bit" if body.isascii() else "8bit")
    return message


class FileMailer:
    def __init__(self, directory: Path, sender: str) -> None:
        self._directory = directory
        self._sender = sender

    def send(self, *, to: str, subject: str, body: str) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        path = self._directory / f"{time.time_ns()}-{uuid.uuid4().hex[:12]}.eml"
        data = _message(self._sender, to, subject, body).as_bytes()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        log.info("mail written", extra={"mail_file": path.name, "subject": subject})


class SmtpMailer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._username = username
        self._password = password
        self._starttls = starttls

    def send(self, *, to: str, subject: str, body: str) -> None:
        message = _message(self._sender, to, subject, body)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=SMTP_TIMEOUT_S) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            log.warning("smtp delivery failed: %s", type(error).__name__)
            raise Unavailable("mail_unavailable") from None


def mailer_for(settings: Settings) -> FileMailer | SmtpMailer:
    if settings.mail_backend == "smtp":
        return SmtpMailer(
            host=settings.smtp_host or "",
            port=settings.smtp_port,
            sender=settings.mail_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )
    return FileMailer(settings.mail_dir, settings.mail_from)
