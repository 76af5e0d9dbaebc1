"""The worker's client book."""

from flask.views import MethodView

from backend.api.clients.schemas import ClientSchema
from backend.api.context import tenant_uow
from backend.api.extension import Blueprint, PaginationParameters
from backend.domain.identity import Role
from backend.service import clients as service

blueprint = Blueprint("clients", __name__, url_prefix="/api/v1/clients", description="Clients")


@blueprint.route("")
class Clients(MethodView):
    @blueprint.protected(Role.WORKER)
    @blueprint.response(200, ClientSchema(many=True))
    @blueprint.paginated()
    def get(self, pagination_parameters: PaginationParameters):
        """List clients"""
        items, total = service.list_clients(
            page=pagination_parameters.page, page_size=pagination_parameters.page_size, uow=tenant_uow()
        )
        pagination_parameters.item_count = total
        return items
