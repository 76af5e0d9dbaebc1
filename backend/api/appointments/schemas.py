from datetime import UTC

import marshmallow as ma

from backend.domain.appointments import NOTES_MAX, AppointmentStatus

STATUSES = [s.value for s in AppointmentStatus]


class Instant(ma.fields.AwareDateTime):
    """An ISO 8601 instant with its offset (a naive one is refused, never guessed) that is
    also an instant in UTC between years 1 and 9999: `0001-01-01T00:00:00+14:00` is in year 0
    in UTC, which PostgreSQL stores but Python cannot read back (it answered 500)."""

    def _deserialize(self, value, attr, data, **kwargs):
        instant = super()._deserialize(value, attr, data, **kwargs)
        try:
            instant.astimezone(UTC)
        except OverflowError:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None
        return instant


class AppointmentSchema(ma.Schema):
    """An appointment. Clients receive only their own, without `notes`, `created_at` and
    `updated_at` (the fields marked "workers only")."""

    id = ma.fields.UUID(dump_only=True)
    client_id = ma.fields.UUID(required=True)
    starts_at = Instant(required=True)
    ends_at = Instant(required=True, metadata={"description": "Exclusive end"})
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    notes = ma.fields.String(
        allow_none=True,
        validate=ma.validate.Length(max=NOTES_MAX),
        metadata={"description": "The worker's private notes (workers only)"},
    )
    shared_notes = ma.fields.String(
        allow_none=True,
        validate=ma.validate.Length(max=NOTES_MAX),
        metadata={"description": "Notes the client can read"},
    )
    cancelled_at = Instant(dump_only=True, allow_none=True)
    created_at = Instant(dump_only=True, metadata={"description": "Workers only"})
    updated_at = Instant(dump_only=True, metadata={"description": "Workers only"})


class AppointmentUpdateSchema(ma.Schema):
    """What a worker may change; the client of an appointment is fixed once booked."""

    starts_at = Instant()
    ends_at = Instant()
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    notes = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=NOTES_MAX))
    shared_notes = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=NOTES_MAX))


class AppointmentQuerySchema(ma.Schema):
    client_id = ma.fields.UUID()
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    starts_from = Instant(
        data_key="from", metadata={"description": "Appointments starting at or after this instant"}
    )
    starts_before = Instant(
        data_key="to", metadata={"description": "Appointments starting before this instant"}
    )
