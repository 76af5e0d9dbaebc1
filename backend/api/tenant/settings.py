"""The workspace's settings: whether its workers must use a second factor.

Changing them is allowed in read-only mode (a lapsed trial must not stop a worker from
securing the workspace) but not during a scheduled deletion, and not by a worker who is
held until they enrol a second factor themselves."""

from flask import g

from backend.api.auth import forget_access, request_id
from backend.api.context import registry_uow
from backend.api.tenant.routes import blueprint
from backend.api.tenant.schemas import WorkspaceSettingsSchema, WorkspaceSettingsUpdateSchema
from backend.domain.identity import Role
from backend.service import workspace_settings as service


@blueprint.route("/settings")
@blueprint.protected(Role.WORKER)
@blueprint.response(200, WorkspaceSettingsSchema)
@blueprint.doc(operationId="getWorkspaceSettings")
def get_settings():
    """Show the workspace's settings"""
    return service.get_settings(tenant_id=g.principal.tenant_id, uow=registry_uow())


@blueprint.route("/settings", methods=["PATCH"])
@blueprint.protected(Role.WORKER, read_only_ok=True)
@blueprint.arguments(WorkspaceSettingsUpdateSchema)
@blueprint.response(200, WorkspaceSettingsSchema)
@blueprint.alt_response(409, description="`mfa_not_enabled`: turn on your own second factor first")
@blueprint.doc(operationId="updateWorkspaceSettings")
def update_settings(body: dict):
    """Change the workspace's settings

    `mfa_required_for_workers`: from then on, a worker without a second factor can only enrol
    one (and see `GET /me`, their password and sessions, or log out); every other route
    answers 403 `mfa_enrolment_required`. Their sessions stay open, so they can enrol at once."""
    principal = g.principal
    settings = service.update_settings(
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        role=principal.role,
        mfa_required_for_workers=body.get("mfa_required_for_workers"),
        uow=registry_uow(),
        request_id=request_id(),
    )
    forget_access(tenant_id=principal.tenant_id)
    return settings
