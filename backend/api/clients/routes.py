"""The worker's client book."""

from datetime import UTC, datetime

from flask import g
from flask.views import MethodView

from backend.api.clients.schemas import (
    ClientQuerySchema,
    ClientRecordCreateSchema,
    ClientRecordSchema,
    ClientRecordUpdateSchema,
)
from backend.api.context import tenant_uow
from backend.api.extension import Blueprint, PaginationParameters
from backend.domain.errors import Invalid
from backend.domain.identity import Role
from backend.service import clients as service

blueprint = Blueprint("clients", __name__, url_prefix="/api/v1/clients", description="Clients")


@blueprint.route("")
class Clients(MethodView):
    @blueprint.protected(Role.WORKER)
    @blueprint.arguments(ClientQuerySchema, location="query")
    @blueprint.response(200, ClientRecordSchema(many=True))
    @blueprint.paginated()
    @blueprint.doc(operationId="listClients")
    def get(self, query: dict, pagination_parameters: PaginationParameters):
        """List clients"""
        items, total = service.list_clients(
            page=pagination_parameters.page,
            page_size=pagination_parameters.page_size,
            search=query.get("q"),
            uow=tenant_uow(),
        )
        pagination_parameters.item_count = total
        return items

    @blueprint.protected(Role.WORKER)
    @blueprint.arguments(ClientRecordCreateSchema)
    @blueprint.response(201, ClientRecordSchema)
    @blueprint.alt_response(409, description="`client_email_taken`")
    @blueprint.doc(operationId="createClient")
    def post(self, fields: dict):
        """Add a client"""
        return service.create_client(fields=fields, now=datetime.now(UTC), uow=tenant_uow())


@blueprint.route("/<uuid:client_id>")
class ClientById(MethodView):
    @blueprint.protected(Role.WORKER)
    @blueprint.response(200, ClientRecordSchema)
    @blueprint.alt_response(404, description="No such client in this workspace")
    @blueprint.doc(operationId="getClient")
    def get(self, client_id):
        """Get a client"""
        return service.get_client(client_id=client_id, uow=tenant_uow())

    @blueprint.protected(Role.WORKER)
    @blueprint.arguments(ClientRecordUpdateSchema)
    @blueprint.response(200, ClientRecordSchema)
    @blueprint.alt_response(404, description="No such client in this workspace")
    @blueprint.alt_response(409, description="`client_email_taken`")
    @blueprint.doc(operationId="updateClient")
    def patch(self, changes: dict, client_id):
        """Change a client"""
        if changes.pop("id", client_id) != client_id:
            raise Invalid({"id": ["Must be the id of the client being changed."]})
        return service.update_client(
            client_id=client_id, changes=changes, now=datetime.now(UTC), uow=tenant_uow()
        )

    @blueprint.protected(Role.WORKER)
    @blueprint.response(204)
    @blueprint.alt_response(404, description="No such client in this workspace")
    @blueprint.doc(operationId="deleteClient")
    def delete(self, client_id):
        """Delete a client, their appointments and (after the retention period) their media"""
        service.delete_client(
            client_id=client_id,
            actor=g.principal,
            now=datetime.now(UTC),
            uow=tenant_uow(),
            request_id=g.get("request_id"),
        )
