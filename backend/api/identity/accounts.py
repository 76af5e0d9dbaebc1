"""The account's own routes: forgotten password, password change, the caller's sessions.

Password change and the caller's sessions work in a read-only workspace and, for its worker,
during a scheduled deletion (they change no workspace data, and securing an account must stay
possible); the reset routes are public, so a blocked or disabled workspace's users can still
recover their login, while the routes that need a token follow the workspace's access mode.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import g, request

from backend.api.auth import forget_access, request_id
from backend.api.context import registry_uow, runtime
from backend.api.extension import Blueprint
from backend.api.identity import limits
from backend.api.identity.schemas import (
    ChangeEmailSchema,
    ChangePasswordSchema,
    CloseAccountSchema,
    ForgotPasswordSchema,
    ResetPasswordSchema,
    SessionListSchema,
    SessionsEndedSchema,
    UserSchema,
    VerifySchema,
)
from backend.domain.identity import Role
from backend.service import identity as service
from backend.service.identity import closing, emails

blueprint = Blueprint("account", __name__, url_prefix="/api/v1", description="Passwords and sessions")


def _now() -> datetime:
    return datetime.now(UTC)


@blueprint.route("/auth/password/forgot", methods=["POST"])
@blueprint.doc(operationId="requestPasswordReset")
@limits.request_password_reset
@blueprint.arguments(ForgotPasswordSchema)
@blueprint.response(202)
@blueprint.alt_response(429, description="rate_limited")
def forgot_password(body):
    """Mail a password-reset link (same answer whether the account exists or not)

    Also how the owner of a workspace provisioned by an operator sets a first password."""
    service.request_password_reset_mail(email=body["email"], jobs=runtime().jobs, request_id=request_id())
    return None


@blueprint.route("/auth/password/reset", methods=["POST"])
@blueprint.doc(operationId="resetPassword")
@limits.reset_password
@blueprint.arguments(ResetPasswordSchema)
@blueprint.response(200, UserSchema)
@blueprint.alt_response(401, description="invalid_token or token_expired")
@blueprint.alt_response(422, description="validation_error: the new password breaks the rules")
@blueprint.alt_response(429, description="rate_limited")
def reset_password(body):
    """Set a new password with the mailed token; every session of the account ends"""
    user = service.reset_password(**body, now=_now(), uow=registry_uow(), request_id=request_id())
    forget_access(user_id=user.id)
    return user


@blueprint.route("/me/password", methods=["POST"])
@blueprint.doc(operationId="changePassword")
@limits.change_password
@blueprint.protected(Role.WORKER, Role.CLIENT, read_only_ok=True, deletion_ok=True, mfa_enrolment_ok=True)
@blueprint.arguments(ChangePasswordSchema)
@blueprint.response(200, SessionsEndedSchema)
@blueprint.alt_response(403, description="invalid_password: the current password is wrong")
@blueprint.alt_response(429, description="rate_limited")
def change_password(body):
    """Change my password (current one required); my other sessions end"""
    principal = g.principal
    ended = service.change_password(
        user_id=principal.user_id,
        tenant_id=principal.tenant_id,
        role=principal.role,
        session_id=principal.session_id,
        current_password=body["current_password"],
        new_password=body["new_password"],
        keep_this_session=body["keep_this_session"],
        now=_now(),
        uow=registry_uow(),
        request_id=request_id(),
    )
    forget_access(user_id=principal.user_id)
    return {"ended": ended}


@blueprint.route("/me/email", methods=["POST"])
@blueprint.doc(operationId="requestEmailChange")
@limits.change_email
@blueprint.protected(Role.WORKER, Role.CLIENT, read_only_ok=True, deletion_ok=True, mfa_enrolment_ok=True)
@blueprint.arguments(ChangeEmailSchema)
@blueprint.response(202)
@blueprint.alt_response(403, description="invalid_password")
@blueprint.alt_response(409, description="email_taken")
@blueprint.alt_response(429, description="rate_limited")
def change_email(body):
    """Change my login email: a link goes to the new address, which takes effect once confirmed"""
    settings = runtime().settings
    principal = g.principal
    emails.request_email_change(
        user_id=principal.user_id,
        tenant_id=principal.tenant_id,
        role=principal.role,
        password=body["password"],
        new_email=body["new_email"],
        now=_now(),
        ttl_s=settings.verification_ttl_s,
        uow=registry_uow(),
        jobs=runtime().jobs,
        request_id=request_id(),
    )
    return None


@blueprint.route("/auth/email/confirm", methods=["POST"])
@blueprint.doc(operationId="confirmEmailChange")
@limits.confirm_email
@blueprint.arguments(VerifySchema)
@blueprint.response(200, UserSchema)
@blueprint.alt_response(401, description="invalid_token or token_expired")
@blueprint.alt_response(409, description="email_taken (the address was taken meanwhile)")
@blueprint.alt_response(429, description="rate_limited")
def confirm_email(body):
    """Confirm a new login email with the link mailed to it; the old address stops working"""
    user = emails.confirm_email_change(
        token=body["token"],
        now=_now(),
        uow=registry_uow(),
        jobs=runtime().jobs,
        request_id=request_id(),
    )
    forget_access(user_id=user.id)
    return user


@blueprint.route("/me/account", methods=["DELETE"])
@blueprint.doc(operationId="deleteMyClientAccount")
@limits.change_email
@blueprint.protected(Role.CLIENT, read_only_ok=True)
@blueprint.arguments(CloseAccountSchema)
@blueprint.response(204)
@blueprint.alt_response(403, description="invalid_password")
@blueprint.alt_response(429, description="rate_limited")
def delete_my_account(body):
    """Close my client login (the worker keeps the business record and is told)"""
    access = g.access
    closing.delete_own_client_account(
        user_id=access.user_id,
        tenant_id=access.tenant_id,
        client_id=access.client_id,
        password=body["password"],
        workspace_name=access.tenant_name,
        now=_now(),
        uow=registry_uow(),
        jobs=runtime().jobs,
        request_id=request_id(),
    )
    forget_access(user_id=access.user_id)
    return None


@blueprint.route("/me/sessions")
@blueprint.doc(operationId="listMySessions")
@blueprint.protected(Role.WORKER, Role.CLIENT, deletion_ok=True, mfa_enrolment_ok=True)
@blueprint.response(200, SessionListSchema)
def list_sessions():
    """List my sessions in this workspace (no IP addresses are kept)"""
    principal = g.principal
    items = service.list_sessions(
        user_id=principal.user_id,
        tenant_id=principal.tenant_id,
        current=principal.session_id,
        now=_now(),
        uow=registry_uow(),
    )
    return {"items": items}


@blueprint.route("/me/sessions/<uuid:session_id>", methods=["DELETE"])
@blueprint.doc(operationId="endMySession")
@blueprint.protected(Role.WORKER, Role.CLIENT, read_only_ok=True, deletion_ok=True, mfa_enrolment_ok=True)
@blueprint.response(204)
@blueprint.alt_response(404, description="not_found (also another user's or another workspace's session)")
def end_session(session_id):
    """End one of my sessions: its refresh and access tokens stop working at once"""
    principal = g.principal
    service.end_session(
        user_id=principal.user_id,
        tenant_id=principal.tenant_id,
        role=principal.role,
        session_id=session_id,
        now=_now(),
        uow=registry_uow(),
        request_id=request_id(),
    )
    forget_access(user_id=principal.user_id, tenant_id=principal.tenant_id)
    return None


@blueprint.route("/me/sessions/end-others", methods=["POST"])
@blueprint.doc(operationId="endMyOtherSessions")
@blueprint.protected(Role.WORKER, Role.CLIENT, read_only_ok=True, deletion_ok=True, mfa_enrolment_ok=True)
@blueprint.response(200, SessionsEndedSchema)
def end_other_sessions():
    """End all my sessions in this workspace except this one"""
    principal = g.principal
    ended = service.end_other_sessions(
        user_id=principal.user_id,
        tenant_id=principal.tenant_id,
        role=principal.role,
        current=principal.session_id,
        now=_now(),
        uow=registry_uow(),
        request_id=request_id(),
    )
    forget_access(user_id=principal.user_id, tenant_id=principal.tenant_id)
    return {"ended": ended}


def user_agent() -> str | None:
    """The caller's User-Agent, clipped, for the session being opened."""
    return service.clip_user_agent(request.headers.get("User-Agent"))
