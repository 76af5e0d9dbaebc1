"""Identity use cases, one module per concern: accounts (signup, verification), sessions
(login, refresh rotation, logout), passwords (reset, change), devices (the caller's own
sessions) and client invitations.

One-time and refresh tokens are 256-bit random values; only their SHA-256 digest is stored.
Mail goes through the job queue after the commit (docs/jobs.md): the worker draws any token
and delivers, so a rolled-back change is never mailed and no link sits in the queue.
"""

from backend.service.identity.accounts import (
    RESEND_VERIFICATION_TASK,
    SignupResult,
    get_user,
    request_verification_resend,
    resend_verification,
    signup,
    verify_email,
    verify_worker_by_operator,
)
from backend.service.identity.common import MAIL_QUEUE, SEND_NOTICE_TASK, token_digest
from backend.service.identity.common import send as send_mail
from backend.service.identity.devices import clip_user_agent, end_other_sessions, end_session, list_sessions
from backend.service.identity.invitations import (
    INVITATION_TASK,
    AcceptedInvitation,
    Invitation,
    accept_invitation,
    invite_client,
    mail_invitation,
)
from backend.service.identity.passwords import (
    PASSWORD_RESET_TASK,
    change_password,
    request_password_reset,
    request_password_reset_mail,
    reset_password,
)
from backend.service.identity.sessions import login, logout, refresh

__all__ = [
    "INVITATION_TASK",
    "MAIL_QUEUE",
    "PASSWORD_RESET_TASK",
    "RESEND_VERIFICATION_TASK",
    "SEND_NOTICE_TASK",
    "AcceptedInvitation",
    "Invitation",
    "SignupResult",
    "accept_invitation",
    "change_password",
    "clip_user_agent",
    "end_other_sessions",
    "end_session",
    "get_user",
    "invite_client",
    "list_sessions",
    "login",
    "logout",
    "mail_invitation",
    "refresh",
    "request_password_reset",
    "request_password_reset_mail",
    "request_verification_resend",
    "resend_verification",
    "reset_password",
    "send_mail",
    "signup",
    "token_digest",
    "verify_email",
    "verify_worker_by_operator",
]
