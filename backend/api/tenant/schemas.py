import marshmallow as ma

from backend.api import rules
from backend.api.parsing import JsonBoolean


class DeletionRequestSchema(ma.Schema):
    confirm_slug = ma.fields.String(
        required=True,
        metadata={"description": "The workspace slug, typed again to confirm", "pattern": rules.SLUG},
    )


class DeletionScheduledSchema(ma.Schema):
    deletion_due_at = ma.fields.AwareDateTime(
        required=True, metadata={"description": "When the workspace and its data are purged"}
    )


class WorkspaceSettingsSchema(ma.Schema):
    mfa_required_for_workers = ma.fields.Boolean(
        required=True,
        metadata={"description": "Workers must log in with a second factor (TOTP)"},
    )


class WorkspaceSettingsUpdateSchema(ma.Schema):
    mfa_required_for_workers = JsonBoolean(
        metadata={
            "description": "Require a second factor of every worker; turning it on needs your own "
            "factor to be on (409 `mfa_not_enabled` otherwise)"
        },
    )
