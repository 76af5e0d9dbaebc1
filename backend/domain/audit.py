"""Audit events: what the append-only trail records, and the names of identity's events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

SIGNUP = "auth.signup"
VERIFIED = "auth.verified"
VERIFICATION_SENT = "auth.verification_sent"
LOGIN = "auth.login"  # outcome success | failure
REFRESH = "auth.refresh"
REFRESH_REUSED = "auth.refresh_reused"
LOGOUT = "auth.logout"
PASSWORD_RESET_REQUESTED = "auth.password_reset_requested"  # outcome failure: no such account
PASSWORD_RESET = "auth.password_reset"
PASSWORD_CHANGED = "auth.password_changed"
MFA_ENABLED = "auth.mfa_enabled"
MFA_DISABLED = "auth.mfa_disabled"  # reason: user | operator
MFA_CHALLENGED = "auth.mfa_challenged"  # a right password, the second step is due
MFA_FAILED = "auth.mfa_failed"  # outcome failure: a wrong code (login, confirm, disable)
MFA_RECOVERY_CODE_USED = "auth.mfa_recovery_code_used"  # count: codes left
EMAIL_CHANGE_REQUESTED = "auth.email_change_requested"
EMAIL_CHANGED = "auth.email_changed"
CLIENT_ACCOUNT_DELETED = "client.account_deleted"  # by the client; the record stays (the worker's)
SESSION_ENDED = "auth.session_ended"  # metadata reason: one | others, count
INVITATION_SENT = "invitation.sent"
INVITATION_ACCEPTED = "invitation.accepted"
MFA_POLICY_CHANGED = "tenant.mfa_policy_changed"  # metadata required: true | false
CLIENT_DATA_EXPORTED = "client.data_exported"  # by the client: count (files), bytes
ACCESS_DENIED = "access.denied"  # metadata code: forbidden | read_only | tenant_disabled | ...

SUCCESS = "success"
FAILURE = "failure"
DENIED = "denied"


@dataclass(frozen=True)
class AuditEvent:
    id: int
    occurred_at: datetime
    tenant_id: uuid.UUID | None
    actor_user_id: uuid.UUID | None
    actor_role: str | None
    event: str
    target_type: str | None
    target_id: str | None
    request_id: str | None
    outcome: str
    metadata: dict = field(default_factory=dict)
