import marshmallow as ma

from backend.api import rules
from backend.api.parsing import JsonBoolean
from backend.domain.identity import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH

# Length caps here only stop absurd payloads before any work; the rules themselves
# (password 10-256 characters, not the email, ...) live in backend/domain/identity.py.
_TOKEN = ma.validate.Length(min=1, max=512)
_PASSWORD = ma.validate.Length(max=PASSWORD_MAX_LENGTH * 4)
# A new password's rule as the document states it (the domain enforces it, with its message).
_NEW_PASSWORD_DOC = {
    "minLength": PASSWORD_MIN_LENGTH,
    "maxLength": PASSWORD_MAX_LENGTH,
    "description": f"{PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters (counted after Unicode "
    "NFKC normalisation), not the account's email address",
}


class SignupSchema(ma.Schema):
    email = rules.Email(required=True, validate=ma.validate.Length(max=254))
    password = ma.fields.String(required=True, load_only=True, validate=_PASSWORD, metadata=_NEW_PASSWORD_DOC)
    name = ma.fields.String(required=True, validate=ma.validate.Length(max=120))
    workspace_name = ma.fields.String(
        required=True, validate=ma.validate.Length(max=120), metadata={"pattern": rules.NON_BLANK}
    )
    workspace_slug = ma.fields.String(
        load_default=None,
        allow_none=True,
        metadata={
            "pattern": rules.OPTIONAL_SLUG,
            "description": "3 to 40 lowercase letters, digits and single hyphens, not reserved; "
            "null or empty: derived from the workspace name",
        },
    )


class UserSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True, required=True)
    email = ma.fields.String(dump_only=True, required=True)
    name = ma.fields.String(dump_only=True, required=True)
    verified = ma.fields.Function(lambda user: user.verified_at is not None, dump_only=True, required=True)
    verified_at = ma.fields.AwareDateTime(dump_only=True, required=True, allow_none=True)
    created_at = ma.fields.AwareDateTime(dump_only=True, required=True)


class TenantSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True, required=True)
    slug = ma.fields.String(dump_only=True, required=True)
    name = ma.fields.String(dump_only=True, required=True)
    status = ma.fields.String(dump_only=True, required=True)
    trial_ends_at = ma.fields.AwareDateTime(dump_only=True, required=True, allow_none=True)


class AccountSchema(ma.Schema):
    user = ma.fields.Nested(UserSchema, dump_only=True, required=True)
    tenant = ma.fields.Nested(TenantSchema, dump_only=True, required=True)


class VerifySchema(ma.Schema):
    token = ma.fields.String(required=True, validate=_TOKEN)


class ResendVerificationSchema(ma.Schema):
    email = rules.Email(required=True, validate=ma.validate.Length(max=254))


class TokenRequestSchema(ma.Schema):
    # A plain string: a malformed email is just wrong credentials, answered like any other.
    email = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=254))
    password = ma.fields.String(required=True, load_only=True, validate=_PASSWORD)
    tenant = ma.fields.String(load_default=None, allow_none=True, metadata={"description": "slug"})


class TokenResponseSchema(ma.Schema):
    access_token = ma.fields.String(dump_only=True, required=True)
    token_type = ma.fields.Constant("Bearer", dump_only=True, required=True)
    expires_in = ma.fields.Integer(dump_only=True, required=True, metadata={"description": "seconds"})
    refresh_token = ma.fields.String(dump_only=True, required=True)


class RefreshSchema(ma.Schema):
    refresh_token = ma.fields.String(required=True, load_only=True, validate=_TOKEN)


class AcceptInvitationSchema(ma.Schema):
    token = ma.fields.String(required=True, validate=_TOKEN)
    password = ma.fields.String(required=True, load_only=True, validate=_PASSWORD, metadata=_NEW_PASSWORD_DOC)
    name = ma.fields.String(load_default=None, allow_none=True, validate=ma.validate.Length(max=120))


class MeSchema(ma.Schema):
    user = ma.fields.Nested(UserSchema, dump_only=True, required=True)
    tenant = ma.fields.Nested(TenantSchema, dump_only=True, required=True)
    role = ma.fields.String(dump_only=True, required=True)
    access_mode = ma.fields.String(
        dump_only=True, required=True, metadata={"enum": ["active", "read_only", "blocked"]}
    )
    client_id = ma.fields.UUID(
        dump_only=True,
        required=True,
        allow_none=True,
        metadata={"description": "A client's own client record (what `POST /media` takes); null for workers"},
    )
    mfa_enrolment_required = ma.fields.Boolean(
        dump_only=True,
        required=True,
        metadata={
            "description": "The workspace requires a second factor of its workers and the caller has "
            "none: only enrolment, this route, the caller's password and sessions, and logout answer "
            "(others: 403 `mfa_enrolment_required`)"
        },
    )


class InvitationSchema(ma.Schema):
    client_id = ma.fields.UUID(dump_only=True, required=True)
    email = ma.fields.String(dump_only=True, required=True)
    expires_at = ma.fields.AwareDateTime(dump_only=True, required=True)


class AuthorizationServerMetadataSchema(ma.Schema):
    """RFC 8414 metadata: where a resource server or client finds the keys and endpoints."""

    issuer = ma.fields.String(required=True, dump_only=True)
    jwks_uri = ma.fields.String(required=True, dump_only=True)
    token_endpoint = ma.fields.String(required=True, dump_only=True)
    grant_types_supported = ma.fields.List(ma.fields.String(), required=True, dump_only=True)
    token_endpoint_auth_methods_supported = ma.fields.List(ma.fields.String(), required=True, dump_only=True)
    response_types_supported = ma.fields.List(ma.fields.String(), required=True, dump_only=True)
    revocation_endpoint = ma.fields.String(required=True, dump_only=True)
    service_documentation = ma.fields.String(required=True, dump_only=True)


class JwksSchema(ma.Schema):
    keys = ma.fields.List(ma.fields.Dict(), dump_only=True, required=True)


class ForgotPasswordSchema(ma.Schema):
    # Any string: a malformed address gets the same 202 as an unknown one (no enumeration).
    email = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=254))


class ResetPasswordSchema(ma.Schema):
    token = ma.fields.String(required=True, validate=_TOKEN)
    password = ma.fields.String(required=True, load_only=True, validate=_PASSWORD, metadata=_NEW_PASSWORD_DOC)


class ChangePasswordSchema(ma.Schema):
    current_password = ma.fields.String(required=True, load_only=True, validate=_PASSWORD)
    new_password = ma.fields.String(
        required=True, load_only=True, validate=_PASSWORD, metadata=_NEW_PASSWORD_DOC
    )
    keep_this_session = JsonBoolean(load_default=True)


class ChangeEmailSchema(ma.Schema):
    password = ma.fields.String(required=True, load_only=True, validate=_PASSWORD)
    new_email = rules.Email(required=True, validate=ma.validate.Length(max=254))


class CloseAccountSchema(ma.Schema):
    password = ma.fields.String(required=True, load_only=True, validate=_PASSWORD)


class SessionSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True, required=True)
    created_at = ma.fields.AwareDateTime(dump_only=True, required=True)
    last_used_at = ma.fields.AwareDateTime(dump_only=True, required=True)
    user_agent = ma.fields.String(dump_only=True, required=True, allow_none=True)
    current = ma.fields.Boolean(dump_only=True, required=True)


class SessionListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(SessionSchema), dump_only=True, required=True)


class SessionsEndedSchema(ma.Schema):
    ended = ma.fields.Integer(dump_only=True, required=True)


class MfaLoginSchema(ma.Schema):
    challenge = ma.fields.String(required=True, validate=_TOKEN)
    code = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=64),
        metadata={"description": "A 6-digit code from the app, or a recovery code"},
    )


class MfaEnrolmentSchema(ma.Schema):
    secret = ma.fields.String(dump_only=True, required=True)
    otpauth_uri = ma.fields.String(dump_only=True, required=True)


class MfaCodeSchema(ma.Schema):
    code = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))


class MfaDisableSchema(ma.Schema):
    password = ma.fields.String(required=True, load_only=True, validate=_PASSWORD)
    code = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))


class MfaEnrolmentConfirmedSchema(ma.Schema):
    recovery_codes = ma.fields.List(ma.fields.String(), dump_only=True, required=True)


class MfaStatusSchema(ma.Schema):
    enabled = ma.fields.Boolean(dump_only=True, required=True)
    enabled_at = ma.fields.AwareDateTime(dump_only=True, required=True, allow_none=True)
    recovery_codes_left = ma.fields.Integer(dump_only=True, required=True)
