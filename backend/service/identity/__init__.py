"""Identity use cases, one module per concern: accounts (signup, verification), sessions
(login, refresh rotation, logout), passwords (reset, change), devices (the caller's own
sessions) and client invitations.

One-time and refresh tokens are 256-bit random values; only their SHA-256 digest is stored.
Mail goes out after the commit, so a rolled-back token is never sent.
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
from backend.service.identity.common import send as send_mail
from backend.service.identity.common import token_digest
from backend.service.identity.devices import clip_user_agent, end_other_sessions, end_session, list_sessions
from backend.service.identity.invitations import (
    AcceptedInvitation,
    Invitation,
    accept_invitation,
    invite_client,
)
from backend.service.identity.passwords import change_password, request_password_reset, reset_password
from backend.service.identity.sessions import login, logout, refresh

__all__ = [
    "RESEND_VERIFICATION_TASK",
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
    "refresh",
    "request_password_reset",
    "request_verification_resend",
    "resend_verification",
    "reset_password",
    "send_mail",
    "signup",
    "token_digest",
    "verify_email",
    "verify_worker_by_operator",
]
