"""Authentication and the caller's identity: signup, verification, tokens, /me, invitations."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import g

from backend.api.auth import forget_access, request_id
from backend.api.context import registry_uow, runtime
from backend.api.errors import error_response
from backend.api.extension import RETRY_AFTER, Blueprint
from backend.api.identity import limits
from backend.api.identity.accounts import user_agent
from backend.api.identity.schemas import (
    AcceptInvitationSchema,
    AccountSchema,
    AuthorizationServerMetadataSchema,
    InvitationSchema,
    JwksSchema,
    MeSchema,
    RefreshSchema,
    ResendVerificationSchema,
    SignupSchema,
    TokenRequestSchema,
    TokenResponseSchema,
    UserSchema,
    VerifySchema,
)
from backend.domain.access import mfa_enrolment_due
from backend.domain.errors import Unauthenticated
from backend.domain.identity import MfaChallenge, Role
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service import identity as service

blueprint = Blueprint("identity", __name__, url_prefix="/api/v1", description="Identity and access")
jwks_blueprint = Blueprint("jwks", __name__, description="Access-token signing keys")


def _now() -> datetime:
    return datetime.now(UTC)


def _claiming_uow() -> SqlRegistryUnitOfWork:
    """Signup's unit of work: the runtime role, which may claim a spare workspace (through
    the owner's `shared.claim_spare_schema`) and never builds one."""
    return SqlRegistryUnitOfWork(runtime().engine, spares=True)


@blueprint.route("/auth/signup", methods=["POST"])
@limits.signup
@blueprint.arguments(SignupSchema)
@blueprint.response(201, AccountSchema)
@blueprint.alt_response(409, description="email_taken or slug_taken")
@blueprint.alt_response(429, description="rate_limited")
@blueprint.alt_response(
    503,
    description="tenant_unavailable: no workspace is ready yet (one is being built); nothing was "
    "recorded: sign up again after `Retry-After` seconds",
    headers={"Retry-After": RETRY_AFTER},
)
@blueprint.doc(operationId="signup")
def signup(body):
    """Create a worker account and its workspace"""
    settings = runtime().settings
    result = service.signup(
        **body,
        trial_days=settings.trial_days,
        now=_now(),
        uow=_claiming_uow(),
        jobs=runtime().jobs,
        spare_target=settings.spare_schemas,
        request_id=request_id(),
    )
    return {"user": result.user, "tenant": result.tenant}


@blueprint.route("/auth/verify", methods=["POST"])
@limits.verify
@blueprint.arguments(VerifySchema)
@blueprint.response(200, UserSchema)
@blueprint.alt_response(401, description="invalid_token or token_expired")
@blueprint.alt_response(409, description="already_verified")
@blueprint.alt_response(429, description="rate_limited")
@blueprint.doc(operationId="verifyEmail")
def verify(body):
    """Verify an email address with the mailed token"""
    user = service.verify_email(token=body["token"], now=_now(), uow=registry_uow(), request_id=request_id())
    forget_access(user_id=user.id)
    return user


@blueprint.route("/auth/verify/resend", methods=["POST"])
@limits.resend_verification
@blueprint.arguments(ResendVerificationSchema)
@blueprint.response(202)
@blueprint.alt_response(429, description="rate_limited")
@blueprint.doc(operationId="resendVerification")
def resend_verification(body):
    """Mail a new verification link (same answer whether the account exists or not)"""
    service.request_verification_resend(email=body["email"], jobs=runtime().jobs, request_id=request_id())
    return None


@blueprint.route("/auth/token", methods=["POST"])
@limits.login
@blueprint.arguments(TokenRequestSchema)
@blueprint.response(200, TokenResponseSchema)
@blueprint.alt_response(
    401,
    description="invalid_credentials; or mfa_required (the password was right and the user has a "
    "second factor): the error body then also carries `challenge` (a string, spent at "
    "/auth/token/mfa) and `expires_in` (seconds)",
)
@blueprint.alt_response(403, description="forbidden: not a member of that workspace")
@blueprint.alt_response(429, description="rate_limited")
@blueprint.doc(operationId="login")
def token(body):
    """Log in: exchange email and password for an access and a refresh token"""
    rt = runtime()
    result = service.login(
        email=body["email"],
        password=body["password"],
        tenant_slug=body["tenant"],
        now=_now(),
        refresh_ttl_s=rt.settings.refresh_token_ttl_s,
        uow=registry_uow(),
        tokens=rt.tokens,
        request_id=request_id(),
        user_agent=user_agent(),
        mfa_challenge_ttl_s=rt.settings.mfa_challenge_ttl_s,
    )
    if isinstance(result, MfaChallenge):
        # A Response, not a body: the 200 schema would drop the challenge.
        response = error_response(401, "mfa_required", headers={"Cache-Control": "no-store"})
        response.set_data(
            json.dumps(
                {"detail": "mfa_required", "challenge": result.challenge, "expires_in": result.expires_in}
            )
        )
        return response
    return result


@blueprint.route("/auth/refresh", methods=["POST"])
@blueprint.arguments(RefreshSchema)
@blueprint.response(200, TokenResponseSchema)
@blueprint.alt_response(401, description="invalid_token, token_expired or refresh_token_reused")
@blueprint.doc(operationId="refreshToken")
def refresh(body):
    """Spend a refresh token for a new token pair"""
    rt = runtime()
    try:
        return service.refresh(
            refresh_token=body["refresh_token"],
            now=_now(),
            refresh_ttl_s=rt.settings.refresh_token_ttl_s,
            uow=registry_uow(),
            tokens=rt.tokens,
            request_id=request_id(),
            user_agent=user_agent(),
        )
    except Unauthenticated as error:
        if error.code == "refresh_token_reused":
            # The family's access tokens die at once in this process (others: cache TTL).
            forget_access()
        raise


@blueprint.route("/auth/logout", methods=["POST"])
@blueprint.protected(Role.WORKER, Role.CLIENT, read_only_ok=True, deletion_ok=True, mfa_enrolment_ok=True)
@blueprint.response(204)
@blueprint.doc(operationId="logout")
def logout():
    """Log out: revoke this session's refresh tokens"""
    principal = g.principal
    service.logout(
        user_id=principal.user_id,
        tenant_id=principal.tenant_id,
        role=principal.role,
        session_id=principal.session_id,
        now=_now(),
        uow=registry_uow(),
        request_id=request_id(),
    )
    forget_access(user_id=principal.user_id, tenant_id=principal.tenant_id)
    return None


@blueprint.route("/auth/invitations/accept", methods=["POST"])
@limits.accept_invitation
@blueprint.arguments(AcceptInvitationSchema)
@blueprint.response(200, AccountSchema)
@blueprint.alt_response(401, description="invalid_token, token_expired or invalid_credentials")
@blueprint.alt_response(409, description="invitation_used")
@blueprint.alt_response(429, description="rate_limited")
@blueprint.doc(operationId="acceptInvitation")
def accept_invitation(body):
    """Accept a client invitation and set a password"""
    accepted = service.accept_invitation(**body, now=_now(), uow=registry_uow(), request_id=request_id())
    return {"user": accepted.user, "tenant": accepted.tenant}


@blueprint.route("/me")
@blueprint.protected(Role.WORKER, Role.CLIENT, deletion_ok=True, mfa_enrolment_ok=True)
@blueprint.response(200, MeSchema)
@blueprint.doc(operationId="getMe")
def me():
    """Show the caller, their workspace, role and access mode"""
    access = g.access
    return {
        "user": service.get_user(user_id=access.user_id, uow=registry_uow()),
        "tenant": {
            "id": access.tenant_id,
            "slug": access.tenant_slug,
            "name": access.tenant_name,
            "status": access.tenant_status,
            "trial_ends_at": access.trial_ends_at,
        },
        "role": access.role,
        "access_mode": g.access_decision.mode,
        "mfa_enrolment_required": mfa_enrolment_due(
            access.role, mfa_required=access.mfa_required, mfa_enabled=access.mfa_enabled
        ),
        "client_id": g.principal.client_id,
    }


@blueprint.route("/clients/<uuid:client_id>/invitation", methods=["POST"])
@blueprint.protected(Role.WORKER)
@blueprint.response(201, InvitationSchema)
@blueprint.alt_response(404, description="not_found (also another workspace's client)")
@blueprint.alt_response(409, description="already_member")
@blueprint.alt_response(422, description="the client has no email address")
@blueprint.doc(operationId="inviteClient")
def invite_client(client_id):
    """Invite a client to log in"""
    access = g.access
    return service.invite_client(
        tenant_id=access.tenant_id,
        schema_name=access.tenant_schema,
        client_id=client_id,
        inviter_id=access.user_id,
        now=_now(),
        invitation_ttl_s=runtime().settings.invitation_ttl_s,
        uow=registry_uow(),
        jobs=runtime().jobs,
        request_id=request_id(),
    )


@jwks_blueprint.route("/.well-known/oauth-authorization-server")
@jwks_blueprint.response(200, AuthorizationServerMetadataSchema)
@jwks_blueprint.doc(operationId="getAuthorizationServerMetadata")
def authorization_server_metadata():
    """Authorization server metadata (RFC 8414): the issuer, its keys and token endpoint"""
    issuer = runtime().settings.jwt_issuer.rstrip("/")
    metadata = {
        "issuer": runtime().settings.jwt_issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/api/v1/auth/token",
        # The token endpoint takes the user's email and password (JSON) and refresh tokens;
        # public clients only: no client secret (`none`), no authorization endpoint.
        "grant_types_supported": ["password", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": [],
        "revocation_endpoint": f"{issuer}/api/v1/auth/logout",
        "service_documentation": f"{issuer}/api/docs",
    }
    return metadata, 200, {"Cache-Control": "public, max-age=300"}


@jwks_blueprint.route("/.well-known/jwks.json")
@jwks_blueprint.response(200, JwksSchema)
@jwks_blueprint.doc(operationId="getJwks")
def jwks():
    """Public keys that verify access tokens (every active key)"""
    return runtime().tokens.jwks, 200, {"Cache-Control": "public, max-age=300"}
