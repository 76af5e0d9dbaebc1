"""The workspace's calendar; clients see and cancel only their own appointments."""

from datetime import UTC, datetime

from flask import g
from flask.views import MethodView

from backend.api.appointments.schemas import (
    AppointmentCreateSchema,
    AppointmentQuerySchema,
    AppointmentSchema,
    AppointmentUpdateSchema,
)
from backend.api.context import tenant_uow
from backend.api.extension import Blueprint, PaginationParameters
from backend.domain.appointments import AppointmentFilter, AppointmentStatus
from backend.domain.identity import Role
from backend.service import appointments as service

blueprint = Blueprint("appointments", __name__, url_prefix="/api/v1/appointments", description="Appointments")
NOT_FOUND = "No such appointment visible to the caller"
OVERLAP = "`appointment_overlap`: another non-cancelled appointment overlaps"


@blueprint.route("")
class Appointments(MethodView):
    @blueprint.protected(Role.WORKER, Role.CLIENT)
    @blueprint.arguments(AppointmentQuerySchema, location="query")
    @blueprint.response(200, AppointmentSchema(many=True))
    @blueprint.paginated()
    @blueprint.doc(operationId="listAppointments")
    def get(self, query: dict, pagination_parameters: PaginationParameters):
        """List appointments"""
        if "status" in query:
            query["status"] = AppointmentStatus(query["status"])
        items, total = service.list_appointments(
            viewer=g.principal,
            filters=AppointmentFilter(**query),
            page=pagination_parameters.page,
            page_size=pagination_parameters.page_size,
            uow=tenant_uow(),
        )
        pagination_parameters.item_count = total
        return items

    @blueprint.protected(Role.WORKER)
    @blueprint.arguments(AppointmentCreateSchema)
    @blueprint.response(201, AppointmentSchema)
    @blueprint.alt_response(404, description="No such client in this workspace")
    @blueprint.alt_response(409, description=OVERLAP)
    @blueprint.doc(operationId="createAppointment")
    def post(self, fields: dict):
        """Book an appointment"""
        return service.create_appointment(
            viewer=g.principal, fields=fields, now=datetime.now(UTC), uow=tenant_uow()
        )


@blueprint.route("/<uuid:appointment_id>")
class AppointmentById(MethodView):
    @blueprint.protected(Role.WORKER, Role.CLIENT)
    @blueprint.response(200, AppointmentSchema)
    @blueprint.alt_response(404, description=NOT_FOUND)
    @blueprint.doc(operationId="getAppointment")
    def get(self, appointment_id):
        """Get an appointment"""
        return service.get_appointment(viewer=g.principal, appointment_id=appointment_id, uow=tenant_uow())

    @blueprint.protected(Role.WORKER)
    @blueprint.arguments(AppointmentUpdateSchema)
    @blueprint.response(200, AppointmentSchema)
    @blueprint.alt_response(404, description=NOT_FOUND)
    @blueprint.alt_response(409, description=OVERLAP)
    @blueprint.doc(operationId="updateAppointment")
    def patch(self, changes: dict, appointment_id):
        """Change an appointment"""
        return service.update_appointment(
            viewer=g.principal,
            appointment_id=appointment_id,
            changes=changes,
            now=datetime.now(UTC),
            uow=tenant_uow(),
        )

    @blueprint.protected(Role.WORKER)
    @blueprint.response(204)
    @blueprint.alt_response(404, description=NOT_FOUND)
    @blueprint.doc(operationId="deleteAppointment")
    def delete(self, appointment_id):
        """Delete an appointment"""
        service.delete_appointment(viewer=g.principal, appointment_id=appointment_id, uow=tenant_uow())


@blueprint.route("/<uuid:appointment_id>/cancel")
class AppointmentCancel(MethodView):
    @blueprint.protected(Role.WORKER, Role.CLIENT)
    @blueprint.response(200, AppointmentSchema)
    @blueprint.alt_response(404, description=NOT_FOUND)
    @blueprint.alt_response(409, description="`appointment_not_cancellable`: past or completed")
    @blueprint.doc(operationId="cancelAppointment")
    def post(self, appointment_id):
        """Cancel an upcoming appointment"""
        return service.cancel_appointment(
            viewer=g.principal, appointment_id=appointment_id, now=datetime.now(UTC), uow=tenant_uow()
        )
