"""The workspace's audit trail, for its workers."""

from flask import g
from flask.views import MethodView

from backend.api.audit.schemas import AuditEventSchema
from backend.api.context import registry_uow
from backend.api.extension import Blueprint, PaginationParameters
from backend.domain.identity import Role
from backend.service import audit as service

blueprint = Blueprint("audit", __name__, url_prefix="/api/v1/audit-events", description="Audit trail")


@blueprint.route("")
class AuditEvents(MethodView):
    @blueprint.protected(Role.WORKER)
    @blueprint.response(200, AuditEventSchema(many=True))
    @blueprint.paginated()
    @blueprint.doc(operationId="listAuditEvents")
    def get(self, pagination_parameters: PaginationParameters):
        """List the workspace's audit events, newest first"""
        items, total = service.list_events(
            tenant_id=g.access.tenant_id,
            page=pagination_parameters.page,
            page_size=pagination_parameters.page_size,
            uow=registry_uow(),
        )
        pagination_parameters.item_count = total
        return items
