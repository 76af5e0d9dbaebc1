"""TOTP second factor: the login's second step (public) and the worker's enrolment,
status and disabling (bearer). Allowed in read-only mode and during a scheduled deletion:
securing an account changes no workspace data."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import g

from backend.api.auth import forget_access, request_id
from backend.api.context import registry_uow, runtime
from backend.api.extension import Blueprint
from backend.api.identity import limits
from backend.api.identity.accounts import user_agent
from backend.api.identity.schemas import (
    MfaCodeSchema,
    MfaDisableSchema,
    MfaEnrolmentConfirmedSchema,
    MfaEnrolmentSchema,
    MfaLoginSchema,
    MfaStatusSchema,
    TokenResponseSchema,
)
from backend.domain.identity import Role
from backend.infrastructure.secret_box import secret_box_for
from backend.infrastructure.totp import PyOtpTotp
from backend.service.identity import mfa as service

blueprint = Blueprint("mfa", __name__, url_prefix="/api/v1", description="Second factor (TOTP)")
_totp = PyOtpTotp()


def _now() -> datetime:
    return datetime.now(UTC)


def _box():
    return secret_box_for(runtime().settings)


@blueprint.route("/auth/token/mfa", methods=["POST"])
@blueprint.doc(operationId="loginSecondFactor")
@limits.mfa_login
@blueprint.arguments(MfaLoginSchema)
@blueprint.response(200, TokenResponseSchema)
@blueprint.alt_response(401, description="invalid_mfa_code, invalid_token or token_expired (the challenge)")
@blueprint.alt_response(429, description="rate_limited")
def token_mfa(body):
    """Log in, second step: spend the MFA challenge with an app code or a recovery code"""
    rt = runtime()
    return service.complete_login(
        challenge=body["challenge"],
        code=body["code"],
        now=_now(),
        refresh_ttl_s=rt.settings.refresh_token_ttl_s,
        uow=registry_uow(),
        tokens=rt.tokens,
        box=_box(),
        totp=_totp,
        request_id=request_id(),
        user_agent=user_agent(),
    )


@blueprint.route("/me/mfa")
@blueprint.doc(operationId="getMyMfa")
@blueprint.protected(Role.WORKER, read_only_ok=True, deletion_ok=True, mfa_enrolment_ok=True)
@blueprint.response(200, MfaStatusSchema)
def mfa_status():
    """Show whether my second factor is on, and how many recovery codes are left"""
    return service.status(user_id=g.principal.user_id, uow=registry_uow())


@blueprint.route("/me/mfa/totp", methods=["POST"])
@blueprint.doc(operationId="startTotpEnrolment")
@blueprint.protected(Role.WORKER, read_only_ok=True, deletion_ok=True, mfa_enrolment_ok=True)
@blueprint.response(201, MfaEnrolmentSchema)
@blueprint.alt_response(409, description="mfa_already_enabled")
def enrol():
    """Start a TOTP enrolment: a new secret for the authenticator app (off until confirmed)"""
    return service.start_enrolment(
        user_id=g.principal.user_id,
        issuer=runtime().settings.mfa_issuer,
        uow=registry_uow(),
        box=_box(),
        totp=_totp,
    )


@blueprint.route("/me/mfa/totp/confirm", methods=["POST"])
@blueprint.doc(operationId="confirmTotpEnrolment")
@limits.mfa_manage
@blueprint.protected(Role.WORKER, read_only_ok=True, deletion_ok=True, mfa_enrolment_ok=True)
@blueprint.arguments(MfaCodeSchema)
@blueprint.response(200, MfaEnrolmentConfirmedSchema)
@blueprint.alt_response(403, description="invalid_mfa_code")
@blueprint.alt_response(409, description="mfa_not_enrolling or mfa_already_enabled")
@blueprint.alt_response(429, description="rate_limited")
def confirm(body):
    """Turn TOTP on with a code from the app; answers the recovery codes, shown once"""
    principal = g.principal
    codes = service.confirm_enrolment(
        user_id=principal.user_id,
        tenant_id=principal.tenant_id,
        role=principal.role,
        code=body["code"],
        now=_now(),
        uow=registry_uow(),
        box=_box(),
        totp=_totp,
        request_id=request_id(),
    )
    forget_access(user_id=principal.user_id)  # a workspace requiring a factor lets them in now
    return {"recovery_codes": codes}


@blueprint.route("/me/mfa/totp/disable", methods=["POST"])
@blueprint.doc(operationId="disableTotp")
@limits.mfa_manage
@blueprint.protected(Role.WORKER, read_only_ok=True, deletion_ok=True, mfa_enrolment_ok=True)
@blueprint.arguments(MfaDisableSchema)
@blueprint.response(204)
@blueprint.alt_response(403, description="invalid_password or invalid_mfa_code")
@blueprint.alt_response(409, description="mfa_not_enabled")
@blueprint.alt_response(429, description="rate_limited")
def disable(body):
    """Turn TOTP off: my password and a current code (or a recovery code)"""
    principal = g.principal
    service.disable(
        user_id=principal.user_id,
        tenant_id=principal.tenant_id,
        role=principal.role,
        password=body["password"],
        code=body["code"],
        now=_now(),
        uow=registry_uow(),
        box=_box(),
        totp=_totp,
        request_id=request_id(),
    )
    forget_access(user_id=principal.user_id)  # a workspace requiring a factor holds them now
    return None
