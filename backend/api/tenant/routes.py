"""The workspace itself: its owner requests or cancels its deletion."""

from datetime import UTC, datetime

from flask import g
from flask.views import MethodView

from backend.api.auth import forget_access, request_id
from backend.api.context import runtime
from backend.api.extension import Blueprint
from backend.api.tenant.schemas import DeletionRequestSchema, DeletionScheduledSchema
from backend.domain.identity import Role
from backend.domain.lifecycle import Actor
from backend.infrastructure.sql.deletion import SqlDeletionUnitOfWork
from backend.service import deletion as service

blueprint = Blueprint("tenant", __name__, url_prefix="/api/v1/tenant", description="The workspace (tenant)")


def _actor() -> Actor:
    return Actor(
        user_id=g.principal.user_id,
        role=g.principal.role.value,
        request_id=request_id(),
    )


def _uow() -> SqlDeletionUnitOfWork:
    return SqlDeletionUnitOfWork(runtime().engine)


@blueprint.route("/deletion")
class Deletion(MethodView):
    @blueprint.protected(Role.WORKER, read_only_ok=True)
    @blueprint.arguments(DeletionRequestSchema)
    @blueprint.response(202, DeletionScheduledSchema)
    @blueprint.alt_response(422, description="confirm_slug does not match the workspace slug")
    @blueprint.doc(operationId="scheduleDeletion")
    def post(self, body: dict):
        """Schedule the workspace's deletion

        Access is blocked at once for everyone except the owner's export and cancellation;
        the data is purged when the grace period (DELETION_GRACE_DAYS) is over."""
        due_at = service.request_deletion(
            tenant_id=g.principal.tenant_id,
            confirm_slug=body["confirm_slug"],
            grace_days=runtime().settings.deletion_grace_days,
            now=datetime.now(UTC),
            actor=_actor(),
            uow=_uow(),
        )
        forget_access(tenant_id=g.principal.tenant_id)
        return {"deletion_due_at": due_at}

    @blueprint.protected(Role.WORKER, read_only_ok=True, deletion_ok=True)
    @blueprint.response(204)
    @blueprint.alt_response(404, description="No deletion is scheduled")
    @blueprint.alt_response(409, description="`deletion_in_progress`: the grace period is over")
    @blueprint.doc(operationId="cancelDeletion")
    def delete(self):
        """Cancel the scheduled deletion"""
        service.cancel_deletion(
            tenant_id=g.principal.tenant_id, now=datetime.now(UTC), actor=_actor(), uow=_uow()
        )
        forget_access(tenant_id=g.principal.tenant_id)
